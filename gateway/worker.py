"""The gateway's background loops (upkeep, work-order sweeps, rollouts, the alert
webhook): one daemon thread each, running its tick every `interval` seconds until
stopped. A tick that raises is logged and the loop goes on: these loops must outlive any
one bad row, locked database or unreachable host."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("pingjia.worker")


class Worker:
    def __init__(self, name: str, tick: Callable[[], None], interval: float, at_once: bool = False):
        """at_once: the first tick as soon as it starts (what came due while the gateway
        was down), not an interval later."""
        self.name = name
        self.tick = tick
        self.interval = interval
        self.at_once = at_once
        self.stopped = threading.Event()  # also for a tick's own waits (a backoff) to end early
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self._wake.set()
        self._thread.join(5)

    def wake(self) -> None:
        """The next tick now, not at the end of the interval."""
        self._wake.set()

    def _run(self) -> None:
        wait = 0.0 if self.at_once else self.interval
        while True:
            if wait:
                self._wake.wait(wait)
                self._wake.clear()
            if self.stopped.is_set():
                return
            try:
                self.tick()
            except Exception:
                log.exception("%s failed; trying again in %s s", self.name, self.interval)
            wait = self.interval
