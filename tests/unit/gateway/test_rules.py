"""When a rating was made, and what it is about: the gateway's rules (rules.py), one by one."""

import pytest

from gateway import rules
from gateway.protocol import Rating

NOW = 1_796_000_000.0  # arrival


def rating(ts_s=NOW - 10, tsync=True, boot=3, up=500_000, case="") -> Rating:
    return Rating("pj-0001", 7, "satisfied", (), case, int(ts_s * 1000), tsync, boot, up, "t", "0" * 64)


DEVICE = {"created_at": NOW - 86400 * 30, "sync_at": None, "sync_boot": None, "sync_up": None}
SYNCED = {**DEVICE, "sync_at": NOW - 100, "sync_boot": 3, "sync_up": 400_000}  # 100 s ago, up 400 s


@pytest.mark.parametrize("r,device,at,clock", [
    (rating(), DEVICE, NOW - 10, "device"),
    (rating(ts_s=NOW + 301), DEVICE, NOW, "suspect"),  # the future
    (rating(ts_s=NOW + 299), DEVICE, NOW + 299, "device"),  # within the slack
    (rating(ts_s=0), DEVICE, NOW, "suspect"),  # 1970
    (rating(ts_s=NOW - 86400 * 31), {**DEVICE, "created_at": 0}, NOW, "suspect"),  # 31 days back, nothing to back it
    (rating(ts_s=NOW - 86400 * 6), {**DEVICE, "created_at": 0}, NOW - 86400 * 6, "device"),  # an outage's backlog
    (rating(ts_s=NOW - 86400 * 40), DEVICE, NOW, "suspect"),  # before the device was registered
    (rating(ts_s=NOW, up=500_000), SYNCED, NOW, "device"),  # agrees with its uptime since the sync
    (rating(ts_s=NOW - 3600, up=500_000), SYNCED, NOW, "suspect"),  # an hour off its uptime: the sync's time
    (rating(ts_s=NOW - 3600, up=450_000), SYNCED, NOW - 50, "suspect"),
    (rating(tsync=False, up=450_000), SYNCED, NOW - 50, "corrected"),  # unsynced: placed by the sync record
    (rating(tsync=False, boot=2), SYNCED, NOW, "arrival"),  # another boot: no way to tell
])
def test_when_the_citizen_pressed(r, device, at, clock):
    assert rules.rating_time(r, device, NOW) == (pytest.approx(at), clock)


CASE = {"serial": "C1", "window": "W01", "staff_id": "S1", "staff_name": "王芳", "item_code": "A",
        "item_name": "事项", "items": "[]", "rating_id": None}
SESSION = {"staff_id": "S2", "staff_name": "李娜"}


def test_a_case_tags_the_rating_and_a_second_rating_of_it_is_a_repeat():
    t = rules.tags(rating(case="C1"), "W01", CASE, SESSION)
    assert (t["staff_id"], t["tag_source"], t["held"], t["forward_state"]) == ("S1", "case", None, "pending")
    t = rules.tags(rating(case="C1"), "W01", {**CASE, "rating_id": "pj-0002:1"}, SESSION)
    assert (t["repeat_of"], t["forward_state"]) == ("pj-0002:1", "repeat")
    t = rules.tags(rating(case="C1"), "W01", {**CASE, "rating_id": "pj-0001:7"}, SESSION)
    assert t["repeat_of"] is None  # its own, sent again


def test_a_case_of_another_window_is_held_and_the_session_tags_it():
    t = rules.tags(rating(case="C1"), "W02", CASE, SESSION)
    assert (t["window"], t["staff_id"], t["tag_source"], t["held"], t["forward_state"]) == \
        ("W02", "S2", "foreign_case", "foreign_case", "held")


@pytest.mark.parametrize("case,session,source", [
    ("", SESSION, "session"), ("NOPE", SESSION, "unknown_case"), ("", None, "none"), ("NOPE", None, "none")])
def test_without_a_known_case_the_session_at_the_time_tags_it(case, session, source):
    t = rules.tags(rating(case=case), "W01", None, session)
    assert (t["tag_source"], t["staff_id"], t["held"]) == (source, session and session["staff_id"], None)


def test_a_sync_record_that_cannot_be_right_places_nothing():
    """A time request with an impossible uptime (up to 2^45 ms) must not drag a synced
    press back a thousand years, or into another staff member's session."""
    poisoned = {**DEVICE, "sync_at": NOW - 10, "sync_boot": 3, "sync_up": 2**45 - 1}
    assert rules.rating_time(rating(ts_s=NOW - 5), poisoned, NOW) == (pytest.approx(NOW - 5), "device")
    assert rules.rating_time(rating(tsync=False), poisoned, NOW) == (NOW, "arrival")
