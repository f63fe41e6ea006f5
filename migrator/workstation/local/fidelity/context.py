"""What every service module of the fidelity layer shares: one object, never copied.

`Context` holds the clock, the scenario's timings and faults, the account and
region, the randomness, and the patches the modules make to moto (undone in
reverse order by `uninstall`). `Observations` holds what the run's summary reads.
"""

from __future__ import annotations

import json
import random
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from moto.cloudwatch.models import cloudwatch_backends

from migrator.workstation.local.clock import SimClock
from migrator.workstation.local.scenario import Fault, Timings

_MISSING = object()


@dataclass
class CallStats:
    total: int = 0
    throttled: int = 0
    per_second: dict[int, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def peak_per_second(self) -> int:
        return max(self.per_second.values(), default=0)


@dataclass
class Observations:
    """What the summary reads: the AWS calls the handlers made, and the audit of
    our own promises (nothing not ours stopped, every address served). AWS keeps
    none of this; the runtime watches it."""

    calls: CallStats = field(default_factory=CallStats)
    # instance id -> its Auto Scaling group (or None) for every stop/terminate
    changed_instances: dict[str, str | None] = field(default_factory=dict)
    address_checks: list[Callable[[], str | None]] = field(default_factory=list)
    # moments an address or record served no running instance
    address_violations: list[str] = field(default_factory=list)
    snapshot_completed_at: dict[str, float] = field(default_factory=dict)
    # standalone target -> each write freeze it went through, in simulated seconds: from the stop of
    # the instance its address pointed at until the address moved or that instance started again
    write_freezes: dict[str, list[float]] = field(default_factory=dict)

    def observe_addresses(self, clock: SimClock) -> None:
        """Our promise that every Elastic IP and record of a standalone target
        points at a running instance, checked after each change that may break it."""
        for check in self.address_checks:
            problem = check()
            if problem:
                self.address_violations.append(f"at {clock.elapsed():.0f}s: {problem}")


class Patches:
    """Changes to moto for the life of a runtime, undone exactly in reverse order."""

    def __init__(self):
        self._saved: list[tuple[object, str, object]] = []
        self._saved_items: list[tuple[dict, object, object]] = []

    def patch(self, owner: object, name: str, value: object) -> None:
        self._saved.append((owner, name, owner.__dict__.get(name, getattr(owner, name, None))))
        setattr(owner, name, value)

    def patch_item(self, mapping: dict, key, value) -> None:
        self._saved_items.append((mapping, key, mapping.get(key, _MISSING)))
        mapping[key] = value

    def after_init(self, cls, hook: Callable[[object], None]) -> None:
        """Run `hook` on every new object of a moto class (to stamp simulated times)."""
        original = cls.__init__

        def init(obj, *args, **kwargs):
            original(obj, *args, **kwargs)
            hook(obj)

        self.patch(cls, "__init__", init)

    def undo(self) -> None:
        for owner, name, value in reversed(self._saved):
            setattr(owner, name, value)
        self._saved.clear()
        for mapping, key, value in reversed(self._saved_items):
            if value is _MISSING:
                mapping.pop(key, None)
            else:
                mapping[key] = value
        self._saved_items.clear()


@dataclass
class Context:
    """What the service modules share; each holds this one object."""

    clock: SimClock
    timings: Timings
    faults: list[Fault]
    random: random.Random
    account: str = "123456789012"  # set by the runtime
    region: str = "us-east-1"
    people_answer: bool = False  # set by `local serve`: approvals come from outside
    unhealthy_instances: set[str] = field(default_factory=set)  # made unhealthy by a fault
    observations: Observations = field(default_factory=Observations)
    patches: Patches = field(default_factory=Patches)
    lock: threading.RLock = field(default_factory=threading.RLock)
    handler_thread: threading.local = field(default_factory=threading.local)  # `.active` while a handler runs

    def in_handler(self) -> bool:
        return getattr(self.handler_thread, "active", False)

    def faults_for(self, target: str, step: str) -> list[Fault]:
        return [f for f in self.faults if f.target == target and f.at == step]

    def has_fault(self, target: str | None, step: str, kind: str) -> bool:
        return target is not None and any(f.kind == kind for f in self.faults_for(target, step))


def set_alarm(account: str, region: str, name: str, state: str, reason: str = "simulated fault") -> None:
    """A fault's alarm changes state as CloudWatch would."""
    backend = cloudwatch_backends[account][region]
    backend.set_alarm_state(name, reason, json.dumps({"simulated": True}), state)
