"""The simulated clock: waits on simulated time, jumps over idle stretches."""

import threading
import time

from migrator.workstation.local.clock import SimClock
from tests.conftest import eventually


def ticking():
    clock = SimClock(start=0.0)
    clock.start_ticking()
    return clock


def test_an_idle_wait_jumps_to_its_deadline():
    clock = ticking()
    try:
        assert clock.wait(threading.Event(), 3600) is False  # an hour, without waiting an hour
        assert clock.now() >= 3600
    finally:
        clock.stop()


def test_a_set_event_ends_the_wait_early():
    clock = ticking()
    event = threading.Event()
    threading.Timer(0.05, event.set).start()
    try:
        with clock.busy():  # busy: no jump, so the event comes first
            assert clock.wait(event, 10_000) is True
            assert clock.now() < 100
    finally:
        clock.stop()


def test_no_jump_while_busy():
    clock = ticking()
    try:
        with clock.busy():
            waiter = threading.Thread(target=clock.sleep, args=(3600,))
            waiter.start()
            time.sleep(0.2)
            assert clock.now() < 10  # held: a handler is running
        waiter.join(5)
        assert not waiter.is_alive() and clock.now() >= 3600
    finally:
        clock.stop()


def test_a_soft_timeout_is_never_jumped_to():
    clock = ticking()
    try:
        done = threading.Event()
        threading.Thread(target=lambda: (clock.wait(threading.Event(), 1e6, soft=True), done.set()),
                         daemon=True).start()
        time.sleep(0.2)
        assert not done.is_set() and clock.now() < 10
        clock.sleep(50)  # a hard timer: the clock jumps to it, not past it
        assert 50 <= clock.now() < 1000
    finally:
        clock.stop()


def test_call_later_runs_at_its_simulated_time():
    clock = ticking()
    seen = []
    try:
        clock.call_later(600, lambda: seen.append(clock.now()))
        clock.sleep(1200)
        eventually(lambda: seen, "the timer's action")
        assert 600 <= seen[0] < 1200
    finally:
        clock.stop()


def test_simulation_threads_run_one_at_a_time_in_the_order_they_became_ready():
    clock = ticking()
    order, running, most = [], [0], [0]

    def worker(name: str):
        for step in range(3):
            running[0] += 1
            most[0] = max(most[0], running[0])
            time.sleep(0.01)  # real time: another thread would get in here if it could
            running[0] -= 1
            order.append((name, step, clock.now() - clock.start))
            clock.sleep(60)

    try:
        threads = [clock.Thread(target=worker, args=(name,), daemon=True) for name in "abc"]
        with clock.busy():  # all three ready before time may move
            for thread in threads:
                thread.start()
        for thread in threads:
            thread.join(10)
        assert most[0] == 1
        assert order == [(name, step, 60.0 * step) for step in range(3) for name in "abc"]
    finally:
        clock.stop()


def test_a_stopped_clock_unwinds_parked_simulation_threads():
    clock = ticking()
    reached = []
    thread = clock.Thread(target=lambda: (clock.wait(threading.Event(), None), reached.append(True)), daemon=True)
    thread.start()
    time.sleep(0.1)
    clock.stop()
    thread.join(5)
    assert not thread.is_alive() and not reached


def test_a_wait_forever_spelled_as_a_number_is_never_jumped_to():
    # moto waits 99,999,999 s where a state sets no TimeoutSeconds: with nothing else left, the clock once
    # jumped there and on, to the year 33658, and every history timestamp after failed ("year is out of range").
    clock = ticking()
    try:
        event, results = threading.Event(), []
        waiter = clock.Thread(target=lambda: results.append(clock.wait(event, 1e15)), daemon=True)
        waiter.start()
        for _ in range(20):  # every simulation thread waits: the scheduler has had its chance to jump
            time.sleep(0.01)
        assert clock.now() < 3600 and results == []
        event.set()
        waiter.join(5)
        assert results == [True] and clock.now() < 3600
    finally:
        clock.stop()


def test_a_joined_simulation_thread_is_no_longer_alive():
    # moto's Program.eval joins its worker thread and reads is_alive() to decide ProgramTimedOut: on a busy
    # machine the worker had signalled "done" but not yet exited, and a rejected run ended TIMED_OUT.
    clock = ticking()

    class SlowToExit(clock.Thread):
        def run(self):
            super().run()
            time.sleep(0.2)  # real time after the simulated work ended: a loaded machine's late thread exit

    seen = []

    def parent():
        child = SlowToExit(target=lambda: clock.sleep(30), daemon=True)
        child.start()
        child.join()
        seen.append(child.is_alive())

    try:
        thread = clock.Thread(target=parent, daemon=True)
        thread.start()
        thread.join(10)
        assert seen == [False]
    finally:
        clock.stop()
