"""What keeps a hall's box in order over the years, looked at by one thread: the wall
clock every second (a step: clock.py), and every UPKEEP_S room on the disk (an alarm well
before the database runs out of it) and the broker's log (rolled over like the gateway's
own; Mosquitto reopens its log on SIGHUP).
Ratings are evidence and are never aged out; what grows otherwise is bounded where it
is written (rejections.DETAILS_KEPT, the gateway's rotating log)."""

from __future__ import annotations

import logging
import shutil

from .alarms import Alarms
from .broker import Broker
from .cli import LOG_FILE_BYTES, LOG_FILE_KEPT
from .clock import StepWatch
from .config import Config
from .worker import Worker

log = logging.getLogger("pingjia.upkeep")

UPKEEP_S = 10.0
CLOCK_S = 1.0


def free_mb(path) -> float:
    return shutil.disk_usage(path).free / 1e6


def roll_log(path, max_bytes: int = LOG_FILE_BYTES, kept: int = LOG_FILE_KEPT) -> bool:
    """path -> path.1 -> ... -> path.<kept> once path is over max_bytes; True if it rolled."""
    try:
        if path.stat().st_size < max_bytes:
            return False
    except FileNotFoundError:
        return False
    for i in range(kept - 1, 0, -1):
        older = path.with_name(f"{path.name}.{i}")
        if older.exists():
            older.replace(path.with_name(f"{path.name}.{i + 1}"))
    path.replace(path.with_name(f"{path.name}.1"))
    return True


class Upkeep:
    def __init__(self, cfg: Config, alarms: Alarms, on_step=None, each=None):
        self.cfg = cfg
        self.alarms = alarms
        self.on_step = on_step  # (seconds, wall time before it): the wall clock stepped
        self.step: tuple[float, float] | None = None  # seen, not yet taken by on_step
        self.each = each  # called every UPKEEP_S: the gateway's own looks (clock_settled)
        self.clock = StepWatch()
        self._ticks = 0
        self.worker = Worker("upkeep", self._tick, CLOCK_S)
        self.start, self.stop = self.worker.start, self.worker.stop

    def _tick(self) -> None:
        self._ticks += 1
        seen = self.clock.check()
        if seen:  # added to one not yet taken (the store could not take it: a full disk)
            self.step = (seen[0] + self.step[0], self.step[1]) if self.step else seen
        if self.step and self.on_step:
            self.on_step(*self.step)
        self.step = None
        if self._ticks % int(UPKEEP_S / CLOCK_S) == 0:
            self.once()
            if self.each:
                self.each()

    def once(self) -> None:
        free = free_mb(self.cfg.home)
        if free < self.cfg.disk_free_min_mb:
            self.alarms.set("disk_low", f"{free:.0f} MB free on the disk of {self.cfg.home}, under "
                                        f"{self.cfg.disk_free_min_mb} MB: free some before the database has none")
        elif free > self.cfg.disk_free_min_mb * 1.1:  # a margin, so that it does not flap at the line
            self.alarms.clear("disk_low", f"{free:.0f} MB free")
        broker = Broker(self.cfg)
        if broker.pid() and roll_log(broker.dir / "mosquitto.log"):  # only a running broker can reopen it
            broker.reload()
