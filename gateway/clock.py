"""The box's wall clock, watched against the time since boot: a step (an NTP correction,
someone setting the clock, forwards or backwards) is seen within a second of it.

What follows the clock across a step is the present: the open sessions' starts, each
device's last heartbeat and its clock record, the times waiting ratings are next tried,
the deadlines of unfinished work orders. Said in the new clock, they keep their order
against what comes after the step: a rating is tagged by the session it was pressed in,
a silent device goes stale on time, a deadline is neither missed early nor late. History
(stored ratings, closed sessions, cases, work-order steps, the audit log) stays as it was
recorded, and the audit log records the step. Where a step backwards leaves two sessions
over one moment, the later is taken (hall.session_at); a window's current case is found
by its session and the order cases were recorded (hall.current_case), never by time.
The devices are asked to take the time again at once (protocol.md section 9,
`sync_time`); until one has, its ratings are placed by its uptime since its last sync
(rules.py: `suspect` when its own clock disagrees by more than 300 s). Durations inside
the gateway (backoff, pauses, rate windows) use the monotonic clock and need nothing."""

from __future__ import annotations

import time

from .data import audit, devices, forwarding, hall, transaction, workorders

STEP_S = 2.0  # a change of the wall clock against the boot clock beyond this, between two looks


def boot_s() -> float:
    """Seconds since boot, suspend included: a suspended box's clock is not a step."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def wall_minus_boot() -> float:
    """The wall clock's offset from the boot clock, read between two looks at the boot
    clock close together (a thread paused between two reads is no step)."""
    while True:
        before = boot_s()
        wall = time.time()
        after = boot_s()
        if after - before < 0.05:
            return wall - (before + after) / 2


class StepWatch:
    def __init__(self):
        self.offset = wall_minus_boot()
        self.wall = time.time()  # at the last look: what was written before a step is older

    def check(self) -> tuple[float, float] | None:
        """The step since the last look, in seconds, with the wall time of that look (in
        the clock before the step), or None. An NTP slew (at most half a millisecond a
        second) is no step: each look takes the offset it finds."""
        offset, looked = wall_minus_boot(), self.wall
        delta, self.offset, self.wall = offset - self.offset, offset, time.time()
        return (delta, looked) if abs(delta) > STEP_S else None


def shift(db, delta: float, before: float, now: float) -> dict:
    """Say the present in the new clock, in one transaction, with its audit entry. before:
    the wall time of the last look before the step, in the old clock; after a step forwards,
    what bears a later time was written in the new clock already, between the step and this,
    and stays. A waiting rating tried early after a step forwards does no harm: only a step
    back moves its next try."""
    bound = before + STEP_S if delta > 0 else float("inf")
    with transaction(db):
        shifted = {"devices": devices.shift_clock(db, delta, bound), "sessions": hall.shift_clock(db, delta, bound),
                   "waiting_ratings": forwarding.shift_clock(db, delta) if delta < 0 else 0,
                   "work_orders": workorders.shift_clock(db, delta, bound)}
        audit.record(db, "system", "clock.step", None, now, seconds=round(delta, 3), **shifted)
    return shifted
