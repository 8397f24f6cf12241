"""Figures kept current at ingest, in the transaction that stores each rating, so that the
statistics over years of ratings (10 million in a large hall) read thousands of rows, not
millions:

    summary_day     day, window, staff, level          -> ratings
    summary_item    month, window, item, level         -> ratings
    summary_hour    month, window, weekday, hour       -> ratings, bad reviews
    summary_reason  day, window, staff, reason         -> bad reviews giving it
    summary_cases   day, window                        -> cases completed, cases rated

A rating counts once it counts in the statistics: not a repeat, not held (a held one when
released). Days and hours are the hall's, by its zone's offset from UTC (the zones of
China keep no summer time); the offset they were made with is kept, and a change of zone
rebuilds them from the ratings at the next start.
"""

from __future__ import annotations

import logging
import time

from ..protocol import BAD_LEVELS, LEVELS
from . import one, transaction

log = logging.getLogger("pingjia.summaries")

SCORE = "case level " + " ".join(f"when '{k}' then {v[1]}" for k, v in LEVELS.items()) + " end"
BAD = "(" + ",".join(f"'{lv}'" for lv in sorted(BAD_LEVELS)) + ")"


def create(db) -> None:
    """The tables (schema migration 5)."""
    db.execute("""create table summary_day (day text not null, window text not null, staff_id text not null,
                  staff_name text, level text not null, n integer not null,
                  primary key (day, window, staff_id, level))""")
    db.execute("create index summary_day_window on summary_day (window, day)")
    db.execute("create index summary_day_staff on summary_day (staff_id, day)")
    db.execute("""create table summary_item (month text not null, window text not null, item_code text not null,
                  item_name text, level text not null, n integer not null,
                  primary key (month, window, item_code, level))""")
    db.execute("""create table summary_hour (month text not null, window text not null, weekday integer not null,
                  hour integer not null, n integer not null, bad integer not null,
                  primary key (month, window, weekday, hour))""")
    db.execute("""create table summary_reason (day text not null, window text not null, staff_id text not null,
                  reason text not null, n integer not null, primary key (day, window, staff_id, reason))""")
    db.execute("""create table summary_cases (day text not null, window text not null, cases integer not null,
                  rated integer not null, primary key (day, window))""")
    db.execute("create table summary_meta (key text primary key, value text)")


def _when(t: float, offset_s: int) -> tuple[str, str, int, int]:
    """day, month, weekday (0 = Monday) and hour of a Unix time, in the hall's time."""
    tm = time.gmtime(t + offset_s)
    return time.strftime("%Y-%m-%d", tm), time.strftime("%Y-%m", tm), tm.tm_wday, tm.tm_hour


def add_rating(db, r: dict, offset_s: int) -> None:
    """Count one rating (a row of the ratings table), inside the caller's transaction."""
    day, month, wday, hour = _when(r["rated_at"], offset_s)
    window, staff = r["window"] or "", r["staff_id"] or ""
    bad = int(r["level"] in BAD_LEVELS)
    db.execute("insert into summary_day values (?, ?, ?, ?, ?, 1) on conflict do update set n = n + 1, "
               "staff_name = coalesce(excluded.staff_name, staff_name)",
               [day, window, staff, r["staff_name"], r["level"]])
    db.execute("insert into summary_item values (?, ?, ?, ?, ?, 1) on conflict do update set n = n + 1",
               [month, window, r["item_code"] or "", r["item_name"], r["level"]])
    db.execute("insert into summary_hour values (?, ?, ?, ?, 1, ?) on conflict do update set n = n + 1, "
               "bad = bad + excluded.bad", [month, window, wday, hour, bad])
    for reason in (r["reason"] or "").split(","):
        if reason and bad:
            db.execute("insert into summary_reason values (?, ?, ?, ?, 1) on conflict do update set n = n + 1",
                       [day, window, staff, reason])


def add_case(db, window: str, completed_at: float, offset_s: int) -> None:
    db.execute("insert into summary_cases values (?, ?, 1, 0) on conflict do update set cases = cases + 1",
               [_when(completed_at, offset_s)[0], window])


def case_rated(db, window: str, completed_at: float, offset_s: int) -> None:
    db.execute("update summary_cases set rated = rated + 1 where day = ? and window = ?",
               [_when(completed_at, offset_s)[0], window])


def ensure(db, offset_s: int) -> None:
    """Rebuild the summaries from the ratings and cases if they were made with another
    offset, or never (a database upgraded to them): one transaction, at start."""
    row = one(db, "select value from summary_meta where key = 'offset_s'")
    if row is not None and int(row["value"]) == offset_s:
        return
    t0 = time.monotonic()
    o = int(offset_s)
    day = f"strftime('%Y-%m-%d', rated_at + {o}, 'unixepoch')"
    month = f"strftime('%Y-%m', rated_at + {o}, 'unixepoch')"
    counted = "from ratings where repeat_of is null and forward_state != 'held'"
    with transaction(db):
        for table in ("summary_day", "summary_item", "summary_hour", "summary_reason", "summary_cases"):
            db.execute(f"delete from {table}")
        db.execute(f"insert into summary_day select {day}, coalesce(window, ''), coalesce(staff_id, ''), "
                   f"max(staff_name), level, count(*) {counted} group by 1, 2, 3, 5")
        db.execute(f"insert into summary_item select {month}, coalesce(window, ''), coalesce(item_code, ''), "
                   f"max(item_name), level, count(*) {counted} group by 1, 2, 3, 5")
        # weekday: SQLite's %w counts from Sunday; here 0 is Monday, as Python's
        db.execute(f"insert into summary_hour select {month}, coalesce(window, ''), "
                   f"(cast(strftime('%w', rated_at + {o}, 'unixepoch') as integer) + 6) % 7, "
                   f"cast(strftime('%H', rated_at + {o}, 'unixepoch') as integer), count(*), "
                   f"sum(level in {BAD}) {counted} group by 1, 2, 3, 4")
        db.execute(f"insert into summary_reason select {day}, coalesce(window, ''), coalesce(staff_id, ''), "
                   f"j.value, count(*) from ratings, json_each('[\"' || replace(reason, ',', '\",\"') || '\"]') j "
                   f"where repeat_of is null and forward_state != 'held' and level in {BAD} and reason != '' "
                   f"group by 1, 2, 3, 4")
        cday = f"strftime('%Y-%m-%d', completed_at + {o}, 'unixepoch')"
        db.execute(f"insert into summary_cases select {cday}, window, count(*), count(rating_id) from cases "
                   f"group by 1, 2")
        db.execute("insert into summary_meta values ('offset_s', ?) on conflict do update set value = excluded.value",
                   [str(o)])
    log.info("statistics summaries built from the stored ratings in %.1f s", time.monotonic() - t0)
