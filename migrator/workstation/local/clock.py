"""The simulated clock, and the scheduler that makes the rehearsal deterministic.

Simulated time never follows real time. Every piece of simulated work (an
execution, a Map iteration, a handler, a timer's action, the approval bot)
runs in a *simulation thread* (`clock.Thread`), and only one of them runs at a
time: it holds the baton until it waits on the clock, ends, or joins another.
The scheduler hands the baton to the next ready thread in a fixed order (the
order they became ready), and when none is ready and nobody outside holds the
clock (`busy()`), it jumps to the earliest hard deadline and wakes what was
due, earliest deadline first, then in the order the waits began. So the same
scenario makes the same calls at the same simulated times, on an idle or a
loaded machine, and an idle runtime uses no CPU.

Threads that are not simulation threads (a test, the HTTP servers, `local
serve`'s callers) may wait on the clock too; they do not take the baton.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import contextmanager

log = logging.getLogger(__name__)

# Where simulated time starts (2026-01-01T00:00:00Z): ids and dates made from it,
# such as a plan's id, are the same on every run.
SIMULATION_EPOCH = 1_767_225_600.0


class ClockStopped(BaseException):
    """Unwinds a simulation thread parked when its runtime stops (not an Exception,
    so the interpreter's `except Exception` does not turn it into a state failure)."""


class _Actor:
    """A simulation thread: it runs only while it holds the baton."""

    __slots__ = ("name", "go")

    def __init__(self, name: str):
        self.name = name
        self.go = threading.Event()


class _Wait:
    """One wait on the clock: ends when its event is set or its deadline passes."""

    __slots__ = ("actor", "event", "seq", "fired", "wake", "rehold")

    def __init__(self, actor: _Actor | None, event: threading.Event, seq: int, rehold: bool = False):
        self.actor, self.event, self.seq = actor, event, seq
        self.fired = False
        self.rehold = rehold  # an outside thread that held the clock holds it again on waking
        self.wake = None if actor else threading.Event()  # for threads outside the simulation


# Longer than any rehearsal (over three years): a timeout this long means "no timeout" (moto's default
# TimeoutSeconds is 99,999,999).
FOREVER_SECONDS = 99_999_999
# Real seconds stop() waits for the thread holding the baton to end its step (never a measure of speed: a step is
# a few API calls; a stuck one is left behind rather than hanging the caller).
STOP_GRACE_SECONDS = 10


class SimClock:
    def __init__(self, start: float | None = None):
        self.start = SIMULATION_EPOCH if start is None else start
        self._now = self.start
        self._lock = threading.RLock()
        self._kick = threading.Event()  # something changed: the scheduler looks again
        # (deadline, seq, wait): hard deadlines are jump targets, soft ones only fire when passed
        self._hard: list[tuple[float, int, _Wait]] = []
        self._soft: list[tuple[float, int, _Wait]] = []
        self._waits: dict[int, list[_Wait]] = {}  # id(event) -> its pending waits
        self._ready: deque[_Actor] = deque()
        self._holder: _Actor | None = None
        self._holds = 0
        self._seq = itertools.count()
        self._local = threading.local()
        self._before_jump: list[Callable[[], None]] = []
        self._stopped = False
        self._thread: threading.Thread | None = None
        self.Thread = self._thread_class()

    # --- reading -------------------------------------------------------------

    def now(self) -> float:
        return self._now

    def elapsed(self) -> float:
        return self._now - self.start

    def in_simulation(self) -> bool:
        """Whether the calling thread is a simulation thread (holding the baton)."""
        return getattr(self._local, "actor", None) is not None

    # --- holding the clock -----------------------------------------------------

    @contextmanager
    def busy(self):
        """Work outside the simulation (a person's request, a test setting up) that
        time must not jump over. A simulation thread already holds the baton."""
        if self.in_simulation():
            yield
            return
        with self._lock:
            self._holds += 1
        try:
            yield
        finally:
            with self._lock:
                self._holds -= 1
            self._kick.set()

    def before_jump(self, hook: Callable[[], None]) -> None:
        """Run `hook` on the scheduler each time all simulated work waits, before it
        jumps (the approval bot reads its mailbox there); what the hook starts runs
        before time moves."""
        self._before_jump.append(hook)

    # --- waiting -------------------------------------------------------------

    def wait(self, event: threading.Event, timeout: float | None, soft: bool = False) -> bool:
        """Like `event.wait(timeout)`, the timeout in simulated seconds. A `soft`
        timeout (a guard around work another thread does, a gate a person
        answers) is never jumped to: it ends only if time passes it anyway."""
        actor = getattr(self._local, "actor", None)
        # "Wait forever" spelled as a number (moto's 99,999,999 s for no TimeoutSeconds, a thread's join) is no
        # deadline to jump to: jumped to, a run with nothing else left ran the clock out to the year 33658.
        soft = soft or (timeout is not None and timeout >= FOREVER_SECONDS)
        with self._lock:
            if event.is_set():
                return True
            if self._stopped:
                if actor is not None:
                    raise ClockStopped()
                return event.is_set()
            self._hook_set(event)
            entry = _Wait(actor, event, next(self._seq))
            self._waits.setdefault(id(event), []).append(entry)
            if timeout is not None:
                heapq.heappush(self._soft if soft else self._hard, (self._now + max(0.0, timeout), entry.seq, entry))
            if actor is not None:
                self._release(actor)
            self._kick.set()  # a new deadline: the scheduler may now jump to it
        if actor is not None:
            self._park(actor)
        else:  # a thread outside the simulation; its event may be set by anyone, hooked or not
            while not entry.wake.wait(0.05) and not event.is_set():
                pass
        with self._lock:
            pending = self._waits.get(id(event), [])
            if entry in pending:
                pending.remove(entry)
                if not pending:
                    self._waits.pop(id(event), None)
            entry.fired = True  # its timer, if any, is now void
        return event.is_set()

    def wait_holding(self, event: threading.Event) -> None:
        """From outside the simulation, while holding the clock (`busy()`): let time
        move until `event` is set, and hold the clock again at that very moment, so
        what the caller does next happens when the event was set (the demo starts
        the next wave when the last one ended, however long it takes to notice)."""
        with self._lock:
            if event.is_set() or self._stopped:
                return
            self._hook_set(event)
            entry = _Wait(None, event, next(self._seq), rehold=True)
            self._waits.setdefault(id(event), []).append(entry)
            self._holds -= 1
            self._kick.set()
        while not entry.wake.wait(0.05) and not event.is_set():
            pass
        with self._lock:
            if not entry.fired:  # set behind the hook's back: hold from now on
                pending = self._waits.get(id(event), [])
                if entry in pending:
                    pending.remove(entry)
                entry.fired = True
                self._holds += 1

    def sleep(self, seconds: float, soft: bool = False) -> None:
        self.wait(threading.Event(), seconds, soft=soft)

    def call_later(self, delay: float, action: Callable[[], None], soft: bool = False) -> None:
        """Run `action` in a simulation thread once `delay` simulated seconds have
        passed. A `soft` one (a background sweep) is never a jump target itself."""

        def run():
            self.sleep(delay, soft=soft)
            action()

        self.Thread(target=run, name="sim-timer", daemon=True).start()

    # --- running -------------------------------------------------------------

    def start_ticking(self) -> None:
        """Start the scheduler (named for the real-time clock it replaced)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._schedule, name="sim-scheduler", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """End the run: parked simulation threads unwind, outside waiters return."""
        with self._lock:
            self._stopped = True
            actors = list(self._ready)
            self._ready.clear()
            waits = [w for pending in self._waits.values() for w in pending]
            self._waits.clear()
            self._hard.clear()
            self._soft.clear()
        for wait in waits:
            if wait.actor is not None:
                wait.actor.go.set()
            else:
                wait.wake.set()
        for actor in actors:
            actor.go.set()
        self._kick.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        # The thread that holds the baton is mid-step (a reminder sweep calling "AWS"): let it end its step before
        # the caller tears moto down, or the step reaches the real endpoint. Its next wait raises ClockStopped.
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while self._holder is not None and not self._holder_is_caller() and time.monotonic() < deadline:
            time.sleep(0.01)

    def _holder_is_caller(self) -> bool:
        return self._holder is getattr(self._local, "actor", None)

    def advance(self, seconds: float) -> None:
        """Move the clock forward by hand (tests and tools), waking what falls due."""
        with self._lock:
            self._advance_to(self._now + seconds)
        self._kick.set()

    # --- the baton ---------------------------------------------------------------

    def _thread_class(self):
        clock = self

        class SimThread(threading.Thread):
            """A thread of simulated work: queued for the baton when started."""

            def start(self):
                self._sim_actor = _Actor(self.name)
                self._sim_done = threading.Event()
                with clock._lock:
                    if clock._stopped:
                        return
                    clock._ready.append(self._sim_actor)
                clock._kick.set()
                super().start()

            def run(self):
                actor = self._sim_actor
                clock._local.actor = actor
                try:
                    clock._park(actor)
                    super().run()
                except ClockStopped:
                    pass
                finally:
                    clock._local.actor = None
                    with clock._lock:
                        self._sim_done.set()
                        if clock._holder is actor:
                            clock._release(actor)

            def join(self, timeout=None):
                if clock.in_simulation():
                    if clock.wait(self._sim_done, timeout):
                        # Its simulated work is over and it holds nothing; wait (real time) for the thread to
                        # exit too, so is_alive() is False after a join as with threading (moto reads it).
                        super().join()
                else:
                    super().join(timeout)

        return SimThread

    def _park(self, actor: _Actor) -> None:
        """Block a simulation thread until the scheduler hands it the baton."""
        actor.go.wait()
        actor.go.clear()
        if self._stopped:
            raise ClockStopped()

    def _release(self, actor: _Actor) -> None:  # with self._lock
        if self._holder is actor:
            self._holder = None
            self._kick.set()

    def _fire(self, wait: _Wait) -> None:  # with self._lock
        if wait.fired:
            return
        wait.fired = True
        if wait.actor is not None:
            self._ready.append(wait.actor)
            self._kick.set()
        else:
            if wait.rehold:
                self._holds += 1
            wait.wake.set()

    def _hook_set(self, event: threading.Event) -> None:  # with self._lock
        """Make `event.set()` wake this clock's waiters in order (a hand-off: the
        waiter is ready before the setter goes on, so no jump can slip between)."""
        if getattr(event, "_sim_clock", None) is self:
            return
        original = type(event).set
        clock = self

        def set_and_wake():
            original(event)
            with clock._lock:
                for wait in clock._waits.pop(id(event), []):
                    clock._fire(wait)

        event.set = set_and_wake
        event._sim_clock = self

    def _advance_to(self, to: float) -> None:  # with self._lock
        if to > self._now:
            self._now = min(to, 1e12)
        due = []
        for timers in (self._hard, self._soft):
            while timers and timers[0][0] <= self._now:
                due.append(heapq.heappop(timers))
        for _, _, wait in sorted(due, key=lambda timer: timer[:2]):  # by deadline, then by when the wait began
            self._fire(wait)

    def _fire_set_events(self) -> None:  # with self._lock
        """Wake, in the order they began, the waits whose event was set through a
        `set` taken before the hook (a bound method kept by a timer, say)."""
        found = sorted((w for pending in self._waits.values() for w in pending if w.event.is_set()),
                       key=lambda w: w.seq)
        for wait in found:
            self._waits[id(wait.event)].remove(wait)
            if not self._waits[id(wait.event)]:
                del self._waits[id(wait.event)]
            self._fire(wait)

    def _next_deadline(self) -> float | None:  # with self._lock
        while self._hard and self._hard[0][2].fired:
            heapq.heappop(self._hard)
        return self._hard[0][0] if self._hard else None

    def _run_hooks(self) -> None:
        for hook in self._before_jump:
            try:
                hook()
            except Exception:  # a failing hook must not stop the clock
                log.exception("clock hook %s failed", hook)

    def _schedule(self) -> None:
        while True:
            # Idle with waits pending, look now and then for an event set behind the hook's back.
            if not self._kick.wait(0.25 if self._waits else None):
                with self._lock:
                    self._fire_set_events()
            self._kick.clear()
            while True:
                with self._lock:
                    if self._stopped:
                        return
                    if self._holder is not None:
                        break
                    if self._ready:
                        self._holder = self._ready.popleft()
                        self._holder.go.set()
                        break
                    if self._holds:
                        break
                # Everything waits: the hooks may start work at this instant.
                self._run_hooks()
                with self._lock:
                    self._fire_set_events()
                    if self._ready or self._holder is not None or self._holds or self._stopped:
                        continue
                    deadline = self._next_deadline()
                    if deadline is None:
                        break  # idle until someone outside acts
                    self._advance_to(deadline)
