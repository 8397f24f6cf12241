"""A step of the box's clock, in the store: the present follows it and history stays;
across a step backwards the later session and the last recorded case are the current
ones; the watch sees a step and not a slew."""

import time

from gateway import clock
from gateway.data import audit, devices, hall, open_db


def test_a_step_moves_the_present_and_leaves_history(tmp_path, monkeypatch):
    db = open_db(tmp_path / "g.db")
    t = 1_800_000_000.0
    devices.register(db, "pj-1", "W01")
    devices.set_health(db, "pj-1", {"outbox": 0}, t)
    devices.set_sync(db, "pj-1", t, 1, 5000, 0.0)
    hall.sign_in(db, "W01", "S1", "甲", t - 600)
    hall.sign_in(db, "W01", "S2", "乙", t - 60)  # S1's session is history now
    old = hall.complete_case(db, "C-1", "W01", [("I1", "事项")], t - 30, 28800)
    shifted = clock.shift(db, -7200, t, t)
    assert shifted["devices"] == 1 and shifted["sessions"] == 1
    d = devices.get(db, "pj-1")
    assert (d["health_at"], d["sync_at"]) == (t - 7200, t - 7200)
    sessions = {s["staff_id"]: s for s in db.query("select * from sessions")}
    assert sessions["S2"]["started_at"] == t - 60 - 7200 and sessions["S1"]["started_at"] == t - 600
    assert hall.case(db, "C-1")["completed_at"] == old["completed_at"]  # a case is history
    (entry,) = audit.entries(db, None, "clock.step", None, 10, None)
    assert entry["detail"]["seconds"] == -7200 and entry["actor"] == "system"

    # after the step: S1's old span and S2's moved start both cover the new clock's now; S2 is taken
    now = t - 7200 + 5
    assert hall.session_at(db, "W01", now)["staff_id"] == "S2"
    new = hall.complete_case(db, "C-2", "W01", [("I2", "事项二")], now, 28800)
    assert new["staff_id"] == "S2" and new["completed_at"] < old["completed_at"]
    assert hall.current_case(db, "W01", hall.session_at(db, "W01", now))["serial"] == "C-2"


def test_the_watch_sees_a_step_not_a_slew(monkeypatch):
    wall = [1_800_000_000.0]
    boot = [100.0]
    monkeypatch.setattr(time, "time", lambda: wall[0])
    monkeypatch.setattr(clock, "boot_s", lambda: boot[0])
    w = clock.StepWatch()
    for _ in range(100):  # a slew: a millisecond a second, for 100 s
        wall[0] += 1.001
        boot[0] += 1
        assert w.check() is None
    looked = wall[0]
    wall[0] += 3600 + 1
    boot[0] += 1
    delta, before = w.check()
    assert round(delta) == 3600 and before == looked
    wall[0] -= 7200 - 1
    boot[0] += 1
    assert round(w.check()[0]) == -7200
    assert w.check() is None


def test_after_a_step_forwards_what_the_new_clock_wrote_already_stays(tmp_path):
    db = open_db(tmp_path / "g.db")
    t = 1_800_000_000.0
    hall.sign_in(db, "W01", "S1", "甲", t - 600)  # before the step
    hall.sign_in(db, "W02", "S2", "乙", t + 3600.5)  # between the step (at t) and its detection, in the new clock
    devices.register(db, "pj-1", "W01")
    devices.set_health(db, "pj-1", {"outbox": 0}, t + 3600.4)
    clock.shift(db, 3600, t, t + 3601)
    starts = {s["window"]: s["started_at"] for s in db.query("select * from sessions")}
    assert starts == {"W01": t - 600 + 3600, "W02": t + 3600.5}
    assert devices.get(db, "pj-1")["health_at"] == t + 3600.4
