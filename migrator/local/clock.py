"""The simulated clock shared by Wait states, Retry intervals, task timeouts,
simulated AWS durations and the handlers' deadlines.

It runs at `speed` simulated seconds per real second. When nothing is working,
only waiting (no handler running, no state entered, no AWS call for a short
quiet spell), it jumps to the earliest wake-up, so a one-hour bake costs no
real time.
"""

from __future__ import annotations

import heapq
import logging
import itertools
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager

log = logging.getLogger(__name__)


class SimClock:
    TICK = 0.005  # real seconds between clock steps
    QUIET = 0.03  # real seconds without activity before jumping ahead
    # While work goes on, time moves at most this fast: under load (many executions
    # on two cores) real time says more about the machine than about AWS, and at
    # full speed it would eat the workflows' deadlines.
    BUSY_SPEED = 5.0

    def __init__(self, speed: float = 200.0, start: float | None = None):
        self.speed = speed
        self.start = time.time() if start is None else start
        self._now = self.start
        self._lock = threading.Lock()
        self._timers: list[tuple[float, int, threading.Event]] = []
        self._cancelled: set[int] = set()
        self._soft: set[int] = set()
        self._seq = itertools.count()
        self._busy = 0
        self._activity = 0
        self._before_jump: list[Callable[[], None]] = []
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    # --- reading -------------------------------------------------------------

    def now(self) -> float:
        return self._now

    def elapsed(self) -> float:
        return self._now - self.start

    # --- activity ------------------------------------------------------------

    def touch(self) -> None:
        """Something happened that may lead to more work: no jump just now."""
        self._activity += 1

    @contextmanager
    def busy(self):
        """A handler (or other work) is running: the clock must not jump."""
        with self._lock:
            self._busy += 1
        self.touch()
        try:
            yield
        finally:
            with self._lock:
                self._busy -= 1
            self.touch()

    def before_jump(self, hook: Callable[[], None]) -> None:
        """Run `hook` on the clock thread before every jump (e.g. to read a queue
        and schedule the approvals it asks for): a hook that touches the clock
        cancels that jump."""
        self._before_jump.append(hook)

    # --- waiting -------------------------------------------------------------

    def wait(self, event: threading.Event, timeout: float | None, soft: bool = False) -> bool:
        """Like `event.wait(timeout)`, with the timeout in simulated seconds. A
        `soft` timeout guards work done by another thread (a task's TimeoutSeconds
        around its worker): the clock never jumps to it, the work sets the pace."""
        if timeout is None:
            self.touch()
            return event.wait()
        deadline = self._now + max(0.0, timeout)
        seq = next(self._seq)
        with self._lock:
            heapq.heappush(self._timers, (deadline, seq, event))
            if soft:
                self._soft.add(seq)
        if not soft:  # a soft wait is a poll riding along: it neither holds nor drives the clock
            self.touch()
        # threading.Event keeps its Condition in `_cond`; the clock notifies it at
        # the deadline without setting the flag, so set() and timeout both wake us.
        with event._cond:
            while not event._flag and self._now < deadline:
                event._cond.wait(1.0)
        with self._lock:
            self._cancelled.add(seq)
        if not soft:
            self.touch()
        return event._flag

    def sleep(self, seconds: float) -> None:
        self.wait(threading.Event(), seconds)

    def call_later(self, delay: float, action: Callable[[], None], soft: bool = False) -> None:
        """Run `action` in its own thread once `delay` simulated seconds have
        passed. Registered at once, so the clock never jumps past it; a `soft`
        one (a background sweep) is never a jump target itself."""
        due = threading.Event()
        with self._lock:
            seq = next(self._seq)
            heapq.heappush(self._timers, (self._now + max(0.0, delay), seq, due))
            if soft:
                self._soft.add(seq)

        def run():
            with due._cond:
                while not self._expired(due) and not self._stopped.is_set():
                    due._cond.wait(1.0)
            if not self._stopped.is_set():
                with self.busy():
                    action()

        threading.Thread(target=run, name="sim-timer", daemon=True).start()

    # --- running -------------------------------------------------------------

    def start_ticking(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sim-clock", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._advance(float("inf"))  # release every waiter

    def advance(self, seconds: float) -> None:
        """Move the clock forward by hand (tests and tools)."""
        self._advance(self._now + seconds)

    def _expired(self, event: threading.Event) -> bool:
        with self._lock:
            return all(entry[2] is not event for entry in self._timers)

    def _next_deadline(self) -> float | None:
        with self._lock:
            while self._timers and self._timers[0][1] in self._cancelled:
                seq = heapq.heappop(self._timers)[1]
                self._cancelled.discard(seq)
                self._soft.discard(seq)
            hard = [deadline for deadline, seq, _ in self._timers if seq not in self._soft and seq not in self._cancelled]
            return min(hard) if hard else None

    def _advance(self, to: float) -> None:
        expired = []
        with self._lock:
            if to > self._now:
                self._now = min(to, 1e12)
            while self._timers and self._timers[0][0] <= self._now:
                deadline, seq, event = heapq.heappop(self._timers)
                self._soft.discard(seq)
                if seq in self._cancelled:
                    self._cancelled.discard(seq)
                else:
                    expired.append(event)
        for event in expired:
            with event._cond:
                event._cond.notify_all()

    def _run_hooks(self) -> None:
        for hook in self._before_jump:
            try:
                hook()
            except Exception:  # a failing hook must not stop the clock
                log.exception("clock hook %s failed", hook)
                self.touch()

    def _run(self) -> None:
        last_real = last_hooks = time.monotonic()
        seen_activity = self._activity
        quiet_since = last_real
        while not self._stopped.wait(self.TICK):
            real = time.monotonic()
            # Work in progress (a handler running, or activity within the quiet spell)
            # moves time at most BUSY_SPEED, so a loaded machine cannot eat deadlines.
            working = self._busy or self._activity != seen_activity or real - quiet_since < self.QUIET
            rate = min(self.speed, self.BUSY_SPEED) if working else self.speed
            self._advance(self._now + (real - last_real) * rate)
            last_real = real
            if real - last_hooks > 0.1:
                last_hooks = real
                self._run_hooks()
            if self._activity != seen_activity:
                seen_activity, quiet_since = self._activity, real
                continue
            if self._busy or real - quiet_since < self.QUIET:
                continue
            self._run_hooks()
            if self._activity != seen_activity:
                continue
            deadline = self._next_deadline()
            if deadline is not None and deadline > self._now:
                self._advance(deadline)
                # the threads just woken get a quiet spell to react before the next jump
                self.touch()
