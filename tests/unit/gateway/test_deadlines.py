"""Work-order deadlines in working days: across a weekend, across a holiday and the
weekend worked in its place (调休), per rule set, with warnings, red cards and escalation."""

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from gateway.deadlines import Calendar, Clock, Deadline, RuleSet
from gateway.errors import ConfigError

TZ = ZoneInfo("Asia/Shanghai")


def at(*args) -> float:
    return datetime(*args, tzinfo=TZ).timestamp()


def order(opened, reason="slow", complex_case=0, state="open", contacted=None, closed=None) -> dict:
    return {"opened_at": opened, "reason": reason, "complex": complex_case, "state": state,
            "contacted_at": contacted, "closed_at": closed}


@pytest.fixture(scope="module")
def cal():
    return Calendar.load()


def test_the_shipped_calendar_has_2026s_holidays_and_its_worked_weekends(cal):
    assert not cal.working(date(2026, 10, 1)) and not cal.working(date(2026, 2, 16))
    assert cal.working(date(2026, 10, 10)) and cal.working(date(2026, 2, 28))  # Saturdays worked
    assert cal.working(date(2026, 12, 1)) and not cal.working(date(2026, 12, 5))


def test_three_working_days_across_a_weekend(cal):
    assert cal.after(date(2026, 11, 27), 3) == date(2026, 12, 2)  # Friday -> Wednesday
    assert cal.after(date(2026, 11, 28), 1) == date(2026, 11, 30)  # from a Saturday: Monday
    assert cal.after(date(2026, 11, 27), 10, working=False) == date(2026, 12, 7)


def test_working_days_across_the_national_day_holiday_and_its_worked_saturday(cal):
    # Tuesday 29 Sep: 30 Sep is day 1; 1-7 Oct are the holiday; Thu 8, Fri 9, Sat 10 (worked)
    assert cal.after(date(2026, 9, 29), 3) == date(2026, 10, 9)
    assert cal.after(date(2026, 9, 29), 4) == date(2026, 10, 10)
    assert cal.after(date(2026, 9, 29), 5) == date(2026, 10, 12)


def test_huanggang_3_5_15_with_warning_red_card_and_escalation(cal):
    clock = Clock(RuleSet.load("huanggang"), cal, "Asia/Shanghai")
    o = order(at(2026, 11, 27, 16, 30))  # Friday afternoon
    t = clock.timeline(o, at(2026, 11, 30, 9))
    assert t["deadlines"]["contact"]["due"] == at(2026, 12, 3)  # end of Wednesday 2 Dec
    assert t["deadlines"]["fix"]["due"] == at(2026, 12, 5)  # end of Friday 4 Dec
    assert t["card"] is None and t["escalation"] is None
    assert clock.timeline(o, at(2026, 12, 2, 8))["deadlines"]["contact"]["card"] == "warning"  # its last day
    t = clock.timeline(o, at(2026, 12, 3, 0, 0, 1))
    assert t["deadlines"]["contact"]["card"] == "red" and t["card"] == "red"
    assert clock.timeline(o, at(2026, 12, 8, 1))["escalation"] == "分管领导"  # 10 calendar days on
    assert clock.timeline(o, at(2026, 12, 13, 1))["escalation"] == "主要领导"
    # contacted in time, then closed late: no card left, the fix deadline recorded as missed
    done = order(o["opened_at"], state="closed", contacted=at(2026, 12, 1, 10), closed=at(2026, 12, 7, 10))
    t = clock.timeline(done, at(2026, 12, 20))
    assert t["card"] is None and t["escalation"] is None
    assert t["deadlines"]["contact"]["met"] is True and t["deadlines"]["fix"]["met"] is False
    # a complex case: 15 working days to fix
    assert clock.timeline(order(o["opened_at"], complex_case=1), o["opened_at"])["deadlines"]["fix"]["due"] == \
        at(2026, 12, 19)


def test_shenzhen_gives_two_working_days_for_a_complaint_about_staff(cal):
    clock = Clock(RuleSet.load("shenzhen"), cal, "Asia/Shanghai")
    opened = at(2026, 11, 27, 16, 30)
    assert clock.timeline(order(opened, "attitude"), opened)["deadlines"]["contact"]["due"] == at(2026, 12, 2)
    assert clock.timeline(order(opened, "slow"), opened)["deadlines"]["contact"]["due"] == at(2026, 12, 3)


def test_a_halls_own_holidays_are_added_and_bad_files_are_named(tmp_path):
    (tmp_path / "holidays.json").write_text('{"holidays": ["2026-12-01"]}')
    assert not Calendar.load(tmp_path).working(date(2026, 12, 1))
    (tmp_path / "holidays.json").write_text('{"holidays": ["1 Dec"]}')
    with pytest.raises(ConfigError, match="YYYY-MM-DD"):
        Calendar.load(tmp_path)
    (tmp_path / "holidays.json").write_text('{"holidays": ["2026-10-10"]}')  # shipped as a worked Saturday
    with pytest.raises(ConfigError, match="both"):
        Calendar.load(tmp_path)
    with pytest.raises(ConfigError, match="known are"):
        RuleSet.load("nowhere")
    (tmp_path / "r.json").write_text('{"contact": {"days": 0}, "fix": {"days": 5}}')
    with pytest.raises(ConfigError, match="contact"):
        RuleSet.load(str(tmp_path / "r.json"))
    assert Deadline.parse({"days": 3}, "x") == Deadline(3, True)


def test_a_bad_holidays_file_is_shown_and_the_shipped_calendar_serves(tmp_path):
    from gateway.events import Events
    from gateway.workflow import WorkOrders
    from simulator.harness import local_config

    cfg = local_config(tmp_path / "h", "cal")  # makes the home
    (cfg.home / "holidays.json").write_text("[1, 2")
    wf = WorkOrders(cfg, Events(cfg))
    assert "not JSON" in wf.calendar_error and not wf.clock.calendar.working(date(2026, 10, 1))
    cfg.work_order_rules = "no-such-rules"
    with pytest.raises(ConfigError, match="known are huanggang, luoning, shenzhen"):
        cfg.check()


def test_the_sweep_raises_each_warning_red_card_and_escalation_once(tmp_path):
    from gateway.data import open_db, workorders
    from gateway.events import Events
    from gateway.workflow import WorkOrders
    from simulator.harness import local_config

    cfg = local_config(tmp_path / "h", "sweep")
    db = open_db(cfg.db_path)
    opened = at(2026, 11, 27, 16, 30)  # a Friday
    o = workorders.open_for(db, {"id": "pj-1:1", "window": "W01", "staff_id": "S1", "staff_name": "王芳",
                                 "case_no": "C1", "item_code": "A", "item_name": "事项", "level": "dissatisfied",
                                 "reason": "slow"}, opened)
    events = Events(cfg)
    wf = WorkOrders(cfg, events)
    assert wf.sweep(db, at(2026, 11, 30, 9)) == 0  # Monday: nothing due yet
    assert wf.sweep(db, at(2026, 12, 2, 9)) == 1  # Wednesday: contact's last day
    assert wf.sweep(db, at(2026, 12, 8, 1)) == 3  # contact red, fix red (its warning passed unseen), 分管领导
    assert wf.sweep(db, at(2026, 12, 8, 2)) == 0  # once each
    kinds = [(e["type"], e.get("deadline"), e.get("card"), e.get("to")) for e in events.recent]
    assert kinds == [("deadline", "contact", "warning", None), ("deadline", "contact", "red", None),
                     ("deadline", "fix", "red", None), ("escalation", None, None, "分管领导")]
    assert all(e["work_order"] == o["id"] and e["staff_id"] == "S1" for e in events.recent)
    workorders.step(db, o["id"], "invalid", "admin", at(2026, 12, 9), "误按", "mistaken")
    assert wf.sweep(db, at(2026, 12, 20)) == 0  # a finished order raises nothing more
