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
