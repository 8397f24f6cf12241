"""Figures kept current at ingest, in the transaction that stores each rating, so that the
statistics over years of ratings (10 million in a large hall) read thousands of rows, not
millions:

    summary_day     day, window, staff, level          -> ratings
    summary_month   month, window, staff, level        -> ratings
    summary_item    month, window, item, level         -> ratings
    summary_hour    month, window, weekday, hour       -> ratings, bad reviews (window '*': the hall)
    summary_reason  day, window, staff, reason         -> bad reviews giving it
    summary_reason_month   month, window, staff, reason
    summary_cases        day, window, staff            -> cases completed, cases rated
    summary_cases_month  month, window, staff
    summary_cases_item   month, window, item
    summary_parts_day    day, window, staff, part, level  -> a version-2 rating's itemised parts
    summary_parts_month  month, window, staff, part, level

A span of days reads its whole months from the month tables and only the days at its
ends from the day tables (spans()): two years are 24 months, not 730 days.

A rating counts once it counts in the statistics: not a repeat, not held (a held one when
released). Days and hours are the hall's, by its zone's offset from UTC (the zones of
China keep no summer time); the offset they were made with is kept, and a change of zone
rebuilds them from the ratings at the next start.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import date, timedelta

from ..protocol import BAD_LEVELS, LEVELS
from . import one, transaction

log = logging.getLogger("pingjia.summaries")

HALL = "*"  # summary_hour's window for the whole hall
SCORE = "case level " + " ".join(f"when '{k}' then {v[1]}" for k, v in LEVELS.items()) + " end"
BAD = "(" + ",".join(f"'{lv}'" for lv in sorted(BAD_LEVELS)) + ")"


def create(db) -> None:
    """The tables (schema migration 5; migration 6 remakes summary_cases, create_cases)."""
    db.execute("""create table summary_day (day text not null, window text not null, staff_id text not null,
                  staff_name text, level text not null, n integer not null,
                  primary key (day, window, staff_id, level))""")
    db.execute("create index summary_day_window on summary_day (window, day)")
    db.execute("create index summary_day_staff on summary_day (staff_id, day)")
    db.execute("""create table summary_month (month text not null, window text not null, staff_id text not null,
                  staff_name text, level text not null, n integer not null,
                  primary key (month, window, staff_id, level))""")
    db.execute("create index summary_month_staff on summary_month (staff_id, month)")
    db.execute("""create table summary_reason_month (month text not null, window text not null,
                  staff_id text not null, reason text not null, n integer not null,
                  primary key (month, window, staff_id, reason))""")
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


def create_cases(db) -> None:
    """Schema migration 6: the cases per staff member and per item too, so that 主动评价率
    has the same three views as the ratings. Filled at the next start (ensure)."""
    db.execute("drop table summary_cases")
    db.execute("""create table summary_cases (day text not null, window text not null, staff_id text not null,
                  staff_name text, cases integer not null, rated integer not null,
                  primary key (day, window, staff_id))""")
    db.execute("""create table summary_cases_month (month text not null, window text not null,
                  staff_id text not null, staff_name text, cases integer not null, rated integer not null,
                  primary key (month, window, staff_id))""")
    db.execute("""create table summary_cases_item (month text not null, window text not null,
                  item_code text not null, item_name text, cases integer not null, rated integer not null,
                  primary key (month, window, item_code))""")
    db.execute("delete from summary_meta where key = 'offset_s'")


def create_parts(db) -> None:
    """Schema migration 9: the itemised parts of version-2 ratings (none stored before it)."""
    for table, when in (("summary_parts_day", "day"), ("summary_parts_month", "month")):
        db.execute(f"""create table {table} ({when} text not null, window text not null, staff_id text not null,
                       part text not null, level text not null, n integer not null,
                       primary key ({when}, window, staff_id, part, level))""")


TABLES = ("summary_day", "summary_month", "summary_item", "summary_hour", "summary_reason", "summary_reason_month",
          "summary_cases", "summary_cases_month", "summary_cases_item", "summary_parts_day", "summary_parts_month")


def spans(since_day: str | None, until_day: str | None) -> list[tuple[str, str, str | None, str | None]]:
    """A span of days (either end open) as (grain, column, first, last) parts, each
    inclusive: its whole months by month, the days at its ends by day."""
    def month_start(d: str) -> bool:
        return d.endswith("-01")

    def month_end(d: str) -> bool:
        return (date.fromisoformat(d) + timedelta(days=1)).day == 1

    first_month = None if since_day is None else since_day[:7] if month_start(since_day) else _next_month(since_day)
    last_month = None if until_day is None else until_day[:7] if month_end(until_day) else _prev_month(until_day)
    if first_month is not None and last_month is not None and first_month > last_month:
        return [("day", "day", since_day, until_day)]  # no whole month inside
    out: list[tuple[str, str, str | None, str | None]] = [("month", "month", first_month, last_month)]
    if since_day is not None and not month_start(since_day):
        out.append(("day", "day", since_day, (date.fromisoformat(first_month + "-01") - timedelta(days=1)).isoformat()
                    if first_month else until_day))
    if until_day is not None and not month_end(until_day):
        out.append(("day", "day", until_day[:8] + "01" if last_month else since_day, until_day))
    return out


def _next_month(d: str) -> str:
    y, m = int(d[:4]), int(d[5:7])
    return f"{y + m // 12:04d}-{m % 12 + 1:02d}"


def _prev_month(d: str) -> str:
    y, m = int(d[:4]), int(d[5:7])
    return f"{y - (m == 1):04d}-{(m - 2) % 12 + 1:02d}"


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
    db.execute("insert into summary_month values (?, ?, ?, ?, ?, 1) on conflict do update set n = n + 1, "
               "staff_name = coalesce(excluded.staff_name, staff_name)",
               [month, window, staff, r["staff_name"], r["level"]])
    db.execute("insert into summary_item values (?, ?, ?, ?, ?, 1) on conflict do update set n = n + 1",
               [month, window, r["item_code"] or "", r["item_name"], r["level"]])
    for w in (window, HALL):
        db.execute("insert into summary_hour values (?, ?, ?, ?, 1, ?) on conflict do update set n = n + 1, "
                   "bad = bad + excluded.bad", [month, w, wday, hour, bad])
    for part, lv in json.loads(r["parts"]).items() if r.get("parts") else ():
        for table, when in (("summary_parts_day", day), ("summary_parts_month", month)):
            db.execute(f"insert into {table} values (?, ?, ?, ?, ?, 1) on conflict do update set n = n + 1",
                       [when, window, staff, part, lv])
    for reason in (r["reason"] or "").split(","):
        if reason and bad:
            for table, when in (("summary_reason", day), ("summary_reason_month", month)):
                db.execute(f"insert into {table} values (?, ?, ?, ?, 1) on conflict do update set n = n + 1",
                           [when, window, staff, reason])


def add_case(db, case: dict, offset_s: int) -> None:
    """Count one completed case (a row of the cases table), inside the caller's transaction."""
    for table, key in _case_keys(case, offset_s):
        db.execute(f"insert into {table} values (?, ?, ?, ?, 1, 0) on conflict do update set cases = cases + 1", key)


def case_rated(db, case: dict, offset_s: int) -> None:
    """A counted case got its first rating."""
    for table, key in _case_keys(case, offset_s):
        db.execute(f"update {table} set rated = rated + 1 where {_CASE_PK[table]}", key[:3])


_CASE_PK = {"summary_cases": "day = ? and window = ? and staff_id = ?",
            "summary_cases_month": "month = ? and window = ? and staff_id = ?",
            "summary_cases_item": "month = ? and window = ? and item_code = ?"}


def _case_keys(case: dict, offset_s: int) -> list[tuple[str, list]]:
    day, month, _, _ = _when(case["completed_at"], offset_s)
    window, staff = case["window"], case["staff_id"] or ""
    return [("summary_cases", [day, window, staff, case["staff_name"]]),
            ("summary_cases_month", [month, window, staff, case["staff_name"]]),
            ("summary_cases_item", [month, window, case["item_code"] or "", case["item_name"]])]


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
        for table in TABLES:
            db.execute(f"delete from {table}")
        db.execute(f"insert into summary_day select {day}, coalesce(window, ''), coalesce(staff_id, ''), "
                   f"max(staff_name), level, count(*) {counted} group by 1, 2, 3, 5")
        db.execute("insert into summary_month select substr(day, 1, 7), window, staff_id, max(staff_name), level, "
                   "sum(n) from summary_day group by 1, 2, 3, 5")
        db.execute(f"insert into summary_item select {month}, coalesce(window, ''), coalesce(item_code, ''), "
                   f"max(item_name), level, count(*) {counted} group by 1, 2, 3, 5")
        # weekday: SQLite's %w counts from Sunday; here 0 is Monday, as Python's
        db.execute(f"insert into summary_hour select {month}, coalesce(window, ''), "
                   f"(cast(strftime('%w', rated_at + {o}, 'unixepoch') as integer) + 6) % 7, "
                   f"cast(strftime('%H', rated_at + {o}, 'unixepoch') as integer), count(*), "
                   f"sum(level in {BAD}) {counted} group by 1, 2, 3, 4")
        db.execute(f"insert into summary_hour select month, '{HALL}', weekday, hour, sum(n), sum(bad) "
                   f"from summary_hour group by 1, 3, 4")
        db.execute(f"insert into summary_reason select {day}, coalesce(window, ''), coalesce(staff_id, ''), "
                   f"j.value, count(*) from ratings, json_each('[\"' || replace(reason, ',', '\",\"') || '\"]') j "
                   f"where repeat_of is null and forward_state != 'held' and level in {BAD} and reason != '' "
                   f"group by 1, 2, 3, 4")
        db.execute("insert into summary_reason_month select substr(day, 1, 7), window, staff_id, reason, sum(n) "
                   "from summary_reason group by 1, 2, 3, 4")
        db.execute(f"insert into summary_parts_day select {day}, coalesce(window, ''), coalesce(staff_id, ''), "
                   f"j.key, j.value, count(*) from ratings, json_each(ratings.parts) j where parts is not null "
                   f"and repeat_of is null and forward_state != 'held' group by 1, 2, 3, 4, 5")
        db.execute("insert into summary_parts_month select substr(day, 1, 7), window, staff_id, part, level, sum(n) "
                   "from summary_parts_day group by 1, 2, 3, 4, 5")
        cday = f"strftime('%Y-%m-%d', completed_at + {o}, 'unixepoch')"
        cmonth = f"strftime('%Y-%m', completed_at + {o}, 'unixepoch')"
        db.execute(f"insert into summary_cases select {cday}, window, coalesce(staff_id, ''), max(staff_name), "
                   f"count(*), count(rating_id) from cases group by 1, 2, 3")
        db.execute("insert into summary_cases_month select substr(day, 1, 7), window, staff_id, max(staff_name), "
                   "sum(cases), sum(rated) from summary_cases group by 1, 2, 3")
        db.execute(f"insert into summary_cases_item select {cmonth}, window, coalesce(item_code, ''), "
                   f"max(item_name), count(*), count(rating_id) from cases group by 1, 2, 3")
        db.execute("insert into summary_meta values ('offset_s', ?) on conflict do update set value = excluded.value",
                   [str(o)])
    log.info("statistics summaries built from the stored ratings in %.1f s", time.monotonic() - t0)
