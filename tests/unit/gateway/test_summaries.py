"""The summaries kept at ingest say what the ratings say: every statistic read from them
equals the same one computed from the ratings, for ratings stored one by one (repeats and
held ones among them) and for summaries rebuilt from scratch."""

import random
import time
from datetime import date, timedelta

import pytest

from gateway import protocol
from gateway.data import devices, hall, open_db, ratings, summaries, transaction
from gateway.protocol import LEVELS, REASONS

OFFSET = 8 * 3600
DAY = 86400


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    db = open_db(tmp_path_factory.mktemp("sum") / "g.db")
    summaries.ensure(db, OFFSET)
    rng = random.Random(5)
    keys = {}
    for w in ("W01", "W02", "W03"):
        creds = devices.register(db, f"pj-{w}", w)
        keys[w] = (bytes.fromhex(creds["key"]), 0)
    start = time.time() - 70 * DAY
    seqs = dict.fromkeys(keys, 0)
    for i in range(400):
        w = rng.choice(list(keys))
        at = start + i * 70 * DAY / 400
        hall.sign_in(db, w, f"S{w}{i // 100}", f"员工{i // 100}", at - 1)
        serial = f"C-{i}"
        hall.complete_case(db, serial, w, [(f"I{rng.randrange(3)}", "事项")], at, OFFSET)
        if rng.random() < 0.3:  # a case nobody rated, beside it
            hall.complete_case(db, f"U-{i}", w, [(f"I{rng.randrange(4)}", "事项")], at + 2, OFFSET)
        level = rng.choice(list(LEVELS))
        bad = level in protocol.BAD_LEVELS
        reason = rng.sample([r for r in REASONS if r != "none"], rng.randint(1, 2)) if bad else []
        for again in range(1 + (rng.random() < 0.1)):  # some cases rated twice: a repeat
            seqs[w] += 1
            msg = {"dev": f"pj-{w}", "seq": seqs[w], "level": level, "reason": reason, "case": serial,
                   "ts": int((at + again) * 1000), "tsync": True, "boot": 1, "up": 1000 + i, "fw": "t"}
            if rng.random() < 0.5:  # a version-2 rating, some of its parts rated
                msg = {"v": 2, **msg, "parts": {p: rng.choice(list(LEVELS))
                                                for p in rng.sample(list(protocol.PARTS), rng.randint(0, 4))}}
            msg = protocol.signed(keys[w][0], "rating", msg)
            with transaction(db):
                ratings.store(db, protocol.parse_rating(protocol.encode(msg))[0], devices.get(db, f"pj-{w}"),
                              at + again + 1, OFFSET)
    return db


def both(db, f: ratings.Filter, by):
    """The statistic from the summaries, and the same from the ratings."""
    raw = ratings.Filter(**{**f.__dict__, "whole_days": False})
    return ratings.stats(db, f, by), ratings.stats(db, raw, by)


@pytest.mark.parametrize("by", [None, "window", "staff", "item"])
def test_statistics_from_the_summaries_equal_those_from_the_ratings(db, by):
    assert ratings.count(db) > 400  # the repeats are stored too
    for f in (ratings.Filter(), ratings.Filter(window="W02"), ratings.Filter(level="dissatisfied"),
              ratings.Filter(staff_id="SW011")):
        summed, raw = both(db, f, by)
        assert summed == raw and summed


def _days(since: str, until: str) -> ratings.Filter:
    """A selection of hall days, with its bounds in Unix time too (the ratings' path)."""
    def epoch(d):
        return time.mktime(time.strptime(d, "%Y-%m-%d")) - time.timezone - OFFSET
    return ratings.Filter(since=epoch(since), until=epoch(until) + DAY, since_day=since, until_day=until)


def test_any_span_of_days_agrees_whole_months_and_ragged_ends_alike(db):
    day = lambda t: time.strftime("%Y-%m-%d", time.gmtime(t + OFFSET))  # noqa: E731
    now = time.time()
    month = day(now - 40 * DAY)[:8] + "01"  # a first of the month inside the data
    spans = [(day(now - 40 * DAY), day(now - 10 * DAY)), (day(now - 65 * DAY), day(now)),
             (month, day(now)), (day(now - 3 * DAY), day(now - 2 * DAY))]
    for since, until in spans:
        f = _days(since, until)
        for by in (None, "window", "staff"):
            summed, raw = both(db, f, by)
            assert summed == raw, (since, until, by)
        for bucket in ("day", "week", "month"):
            assert ratings.trend(db, f, bucket, OFFSET) == ratings.trend(db, ratings.Filter(
                **{**f.__dict__, "whole_days": False}), bucket, OFFSET), (since, until, bucket)
        counted = [r for r in ratings.each(db, ratings.Filter(**{**f.__dict__, "whole_days": False}))
                   if r["level"] in protocol.BAD_LEVELS]
        assert sum(r["n"] for r in ratings.reasons(db, f)) == sum(len(r["reason"].split(",")) for r in counted)


def test_the_heat_map_reasons_and_rated_share_add_up(db):
    counted = [r for r in ratings.by_id(db).values() if not r["repeat_of"] and r["forward_state"] != "held"]
    cells = ratings.heatmap(db, None, None, None)
    assert sum(c["ratings"] for c in cells) == len(counted)
    assert sum(c["bad_reviews"] for c in cells) == sum(r["level"] in protocol.BAD_LEVELS for r in counted)
    given = sum(len(r["reason"].split(",")) for r in counted if r["level"] in protocol.BAD_LEVELS)
    assert sum(r["n"] for r in ratings.reasons(db, ratings.Filter())) == given
    assert hall.rated_share(db, None, None, (None, None)) == hall.rated_share(db, None, None)


def _month_bounds(day: str) -> tuple[str, str]:
    """The first and last day of the month of a day."""
    first = date.fromisoformat(day[:8] + "01")
    return first.isoformat(), ((first + timedelta(days=32)).replace(day=1) - timedelta(days=1)).isoformat()


def test_the_rated_share_per_window_staff_and_item_agrees_with_the_cases(db):
    day = lambda t: time.strftime("%Y-%m-%d", time.gmtime(t + OFFSET))  # noqa: E731
    now = time.time()
    ragged = [(day(now - 40 * DAY), day(now - 10 * DAY)), (day(now - 65 * DAY), day(now)),
              (day(now - 3 * DAY), day(now - 2 * DAY)), (None, None)]
    whole = [_month_bounds(day(now - 40 * DAY)), (_month_bounds(day(now - 65 * DAY))[0],
                                                  _month_bounds(day(now - 40 * DAY))[1]), (None, None)]
    seen = set()
    for by, spans in (("window", ragged), ("staff", ragged), ("item", whole)):
        for since, until in spans:
            f = _days(since, until) if since else ratings.Filter()
            for window in (None, "W02"):
                summed = hall.rated_share(db, f.since, f.until, (since, until), by, window)
                raw = hall.rated_share(db, f.since, f.until, None, by, window)
                assert summed == raw, (by, since, until, window)
                key = {"window": "windows", "staff": "staff", "item": "items"}[by]
                assert sum(r["cases"] for r in summed[key]) == summed["cases"]
                seen.update(r["share"] for r in summed[key])
    assert len(seen) > 10 and max(seen) <= 1 and min(seen) < 1  # not every case rated: the shares differ


def test_the_parts_from_the_summaries_equal_those_from_the_ratings(db):
    day = lambda t: time.strftime("%Y-%m-%d", time.gmtime(t + OFFSET))  # noqa: E731
    now = time.time()
    for f in (ratings.Filter(), ratings.Filter(window="W02"), ratings.Filter(staff_id="SW011"),
              _days(day(now - 40 * DAY), day(now - 10 * DAY))):
        kept = ratings.parts(db, f)
        raw = ratings.parts(db, ratings.Filter(**{**f.__dict__, "whole_days": False}))
        assert sorted(kept, key=lambda r: r["part"]) == sorted(raw, key=lambda r: r["part"]) and kept


def test_rebuilt_summaries_equal_the_ones_kept_at_ingest(db):
    kept = {t: sorted(db.execute(f"select * from {t}").fetchall()) for t in summaries.TABLES}
    summaries.ensure(db, OFFSET + 3600)  # another zone: rebuilt
    assert sorted(db.execute("select * from summary_hour").fetchall()) != kept["summary_hour"]
    summaries.ensure(db, OFFSET)
    for table, rows in kept.items():
        assert sorted(db.execute(f"select * from {table}").fetchall()) == rows, table
