"""Wall-clock time for the domain code. The local runtime swaps in its simulated
clock, so deadlines and bake times follow the same clock as Wait states."""

import time
from collections.abc import Callable

_now: Callable[[], float] = time.time


def now() -> float:
    return _now()


def use(source: Callable[[], float] | None) -> None:
    global _now
    _now = source or time.time
