"""Step Functions interpreter threads on the simulated clock's scheduler.

moto's interpreter (ported from LocalStack) runs each execution, each Map
iteration, each Parallel branch and each timed task in a thread of its own and
joins them with `threading`. Here those threads are the clock's simulation
threads and their joins and events wait on the clock, so one runs at a time in
a fixed order and simulated time moves only when all of them wait. On AWS the
service is event-driven; this reproduces its order of events, not its threads.
"""

from __future__ import annotations

import random
import threading
import time
import types
from collections.abc import Callable

from migrator.workstation.local.clock import SimClock

# A `.sync` task re-reads its child at least this often (simulated seconds) even
# when no execution ended; on AWS the parent learns of the child's end at once.
SYNC_POLL_SECONDS = 60.0


class SimThreading(types.ModuleType):
    """`threading` for an interpreter module: its threads are simulation threads
    and its events wait on the clock (a `soft` timeout is never jumped to)."""

    def __init__(self, clock: SimClock, soft: bool = False):
        super().__init__("threading")

        class SimEvent(threading.Event):
            def wait(self, timeout=None):
                return clock.wait(self, timeout, soft=soft)

        self.Event = SimEvent
        self.Thread = clock.Thread

    def __getattr__(self, name):
        return getattr(threading, name)


class SimTime(types.ModuleType):
    """`time` for a module that sleeps: the sleep follows the simulated clock. With
    `wake`, a sleep also ends when that event is pulsed (event-driven polling)."""

    def __init__(self, clock: SimClock, soft: bool = False, wake: threading.Event | None = None,
                 seconds: float | None = None):
        super().__init__("time")
        self._clock, self._soft, self._wake, self._seconds = clock, soft, wake, seconds

    def sleep(self, seconds: float) -> None:
        self._clock.wait(self._wake or threading.Event(), self._seconds or seconds, soft=self._soft)

    def __getattr__(self, name):
        return getattr(time, name)


def install(clock: SimClock, patch: Callable[[object, str, object], None], rng: random.Random) -> threading.Event:
    """Route every thread, join, sleep and jitter of the interpreter through the clock
    and the run's seeded random source; `patch(owner, name, value)` records each
    change so the runtime can undo it. Returns the event pulsed at every execution's end."""
    from moto.stepfunctions.parser.asl.component.common.retry import jitter_strategy_decl, retrier_decl
    from moto.stepfunctions.parser.asl.component.program import program
    from moto.stepfunctions.parser.asl.component.state.exec import execute_state
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration import (
        inline_iteration_component,
        job,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_parallel import branch_worker, branches_decl
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_callback
    from moto.stepfunctions.parser.backend import execution_worker

    hard = SimThreading(clock)
    patch(execution_worker, "Thread", clock.Thread)
    for module in (program, inline_iteration_component, job, branch_worker, branches_decl):
        patch(module, "threading", hard)
    # A task's TimeoutSeconds guards the worker running it: the worker sets the pace.
    patch(execute_state, "Thread", clock.Thread)
    patch(execute_state, "threading", SimThreading(clock, soft=True))
    # AWS: Retry intervals take simulated time, with FULL jitter from the run's seed.
    patch(retrier_decl, "time", SimTime(clock))
    patch(jitter_strategy_decl, "random", rng)

    # A `.sync` task polls its child execution; here the poll wakes whenever an
    # execution ends (and at least every SYNC_POLL_SECONDS), never driving the clock.
    ended = threading.Event()
    patch(state_task_service_callback, "threading", SimThreading(clock, soft=True))
    patch(state_task_service_callback, "time", SimTime(clock, soft=True, wake=ended, seconds=SYNC_POLL_SECONDS))
    original_logic = execution_worker.ExecutionWorker._execution_logic

    def execution_logic(worker):
        try:
            original_logic(worker)
        finally:
            ended.set()  # wakes every `.sync` poll, in the order they began waiting
            ended.clear()

    patch(execution_worker.ExecutionWorker, "_execution_logic", execution_logic)
    return ended


