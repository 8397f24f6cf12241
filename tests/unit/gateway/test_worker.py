"""The background loops' thread: a failing tick is logged and the next one comes; wake()
runs a tick at once; stop() ends it, even in a long interval."""

import threading
import time

from gateway.worker import Worker


def test_a_failing_tick_does_not_end_the_loop_and_wake_and_stop_are_prompt(caplog):
    ticks: list[float] = []
    went = threading.Event()

    def tick():
        ticks.append(time.monotonic())
        if len(ticks) == 1:
            raise RuntimeError("a locked database")
        went.set()

    w = Worker("test loop", tick, 0.05, at_once=True)
    w.start()
    assert went.wait(2), "the tick after the failure never came"
    assert "test loop failed" in caplog.text and "a locked database" in caplog.text
    w.stop()
    assert not w._thread.is_alive()

    slow: list[float] = []
    w = Worker("slow loop", lambda: slow.append(time.monotonic()), 3600)
    w.start()
    t0 = time.monotonic()
    w.wake()
    deadline = time.monotonic() + 2
    while not slow and time.monotonic() < deadline:
        time.sleep(0.01)
    assert slow and slow[0] - t0 < 1  # woken, not an hour later
    t1 = time.monotonic()
    w.stop()
    assert time.monotonic() - t1 < 1 and not w._thread.is_alive() and len(slow) == 1
