"""Ratings: storing a verified one (idempotent by rating ID), releasing a held one, and
the views admins read: lists, CSV rows, statistics."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta

from .. import rules
from ..errors import Conflict, NotFound
from ..protocol import BAD_LEVELS, LEVELS, Rating
from . import forwarding, hall, one, rows, summaries, transaction, where, workorders


def store(db, r: Rating, d: dict, received_at: float, offset_s: int) -> tuple[str, dict]:
    """Tag and insert one verified rating, inside the caller's transaction, and count it
    in the summaries. d: the device's row; offset_s: the hall's offset from UTC. Returns
    ("stored"|"duplicate", row); row["held"] says why a rating waits for an admin;
    row["work_order"] is the order a bad review opened.

    A correctly signed rating is never refused: one whose ID is taken by a different
    rating (a device whose counter went back, or a forger holding its key) is stored
    under an ID of its own and held, so that neither can erase the other.
    """
    held = None
    rid = r.id
    old = db.conn.execute("select sig, held from ratings where id = ?", [rid]).fetchone()
    if old and old[0] != r.sig:
        held, rid = "seq_taken", f"{r.id}:{r.sig[:16]}"
        old = db.conn.execute("select sig, held from ratings where id = ?", [rid]).fetchone()
    if old:
        return "duplicate", {"id": rid, "held": old[1]}
    rated_at, clock = rules.rating_time(r, d, received_at)
    case = hall.case(db, r.case) if r.case else None
    session = None if case and case["window"] == d["window"] else hall.session_at(db, d["window"], rated_at)
    row = {
        "id": rid, "dev": r.dev, "seq": r.seq, "level": r.level, "score": LEVELS[r.level][1],
        "reason": ",".join(r.reason), "parts": json.dumps(dict(r.parts)) if r.parts else None,
        "case_no": r.case, "device_ts": r.ts, "tsync": int(r.tsync),
        "boot": r.boot, "up": r.up, "fw": r.fw, "sig": r.sig, "received_at": received_at,
        "rated_at": rated_at, "clock": clock, "forwarded_at": None, "attempts": 0,
        "next_attempt_at": received_at, "last_error": None,
        **rules.tags(r, d["window"], case, session),
    }
    if held:
        row.update(held=held, forward_state="held")
    db.conn.execute(f"insert into ratings ({', '.join(row)}) values ({', '.join('?' * len(row))})",
                    list(row.values()))
    if case is not None and row["tag_source"] == "case" and not row["repeat_of"] and not row["held"]:
        hall.mark_rated(db, r.case, rid)
        summaries.case_rated(db, case, offset_s)
    if not row["repeat_of"] and not row["held"]:
        summaries.add_rating(db, row, offset_s)
    if workorders.wanted(row):
        row["work_order"] = workorders.open_for(db, row, received_at)
    return "stored", row


def release(db, rid: str, at: float, offset_s: int) -> dict | None:
    """An admin found a held rating genuine: it is counted and forwarded from now on, and
    a bad review opens its work order now. Its `held` reason stays, as the record of why
    it waited. Returns the work order it opened, if any."""
    with transaction(db):
        row = one(db, "select * from ratings where id = ?", [rid])
        if row is None:
            raise NotFound(f"no rating {rid}")
        if row["forward_state"] != "held":
            raise Conflict(f"rating {rid} is not held")
        db.execute("update ratings set forward_state = 'pending', next_attempt_at = ? where id = ?", [at, rid])
        row["forward_state"] = "pending"
        if not row["repeat_of"]:
            summaries.add_rating(db, row, offset_s)
        return workorders.open_for(db, row, at) if workorders.wanted(row) else None


@dataclass
class Filter:
    """What the ratings views select by; times in Unix seconds. Repeats and held
    ratings are left out unless asked for."""
    window: str | None = None
    staff_id: str | None = None
    level: str | None = None
    dev: str | None = None
    since: float | None = None
    until: float | None = None
    repeats: bool = False
    held: bool = False
    # the same bounds as hall days (YYYY-MM-DD, until inclusive), when they are whole days:
    # then the statistics read the summaries
    since_day: str | None = None
    until_day: str | None = None
    whole_days: bool = True

    def summarised(self) -> bool:
        """Whether the summaries hold exactly what this selects."""
        return self.dev is None and not self.repeats and not self.held and self.whole_days

    def summary_sql(self, day: str = "day") -> tuple[str, list]:
        return where(("window = ?", self.window), ("staff_id = ?", self.staff_id), ("level = ?", self.level),
                     (f"{day} >= ?", self.since_day), (f"{day} <= ?", self.until_day))

    def sql(self) -> tuple[str, list]:
        where: list[str] = []
        args: list[object] = []
        for col, val in (("window", self.window), ("staff_id", self.staff_id), ("level", self.level),
                         ("dev", self.dev)):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        if self.since is not None:
            where.append("rated_at >= ?")
            args.append(self.since)
        if self.until is not None:
            where.append("rated_at < ?")
            args.append(self.until)
        if not self.repeats:
            where.append("repeat_of is null")
        if not self.held:
            where.append("forward_state != 'held'")
        return (" where " + " and ".join(where)) if where else "", args


def listed(db, f: Filter, limit: int, offset: int) -> list[dict]:
    sql, args = f.sql()
    return rows(db, f"select * from ratings{sql} order by rated_at, id limit ? offset ?", [*args, limit, offset])


def each(db, f: Filter):
    """Every selected rating, oldest first, read as it goes (a CSV of a year is long)."""
    sql, args = f.sql()
    yield from db.query(f"select * from ratings{sql} order by rated_at, id", args)


_BAD = ",".join(f"'{lv}'" for lv in sorted(BAD_LEVELS))
_RAW = (f"count(*) ratings, round(avg(score), 2) mean_score, "
        f"round(1.0 * sum(level not in ({_BAD})) / count(*), 4) satisfaction_rate, sum(level in ({_BAD})) bad_reviews")
_SUMMED = (f"coalesce(sum(n), 0) ratings, round(1.0 * sum(n * {summaries.SCORE}) / sum(n), 2) mean_score, "
           f"round(1.0 * sum(case when level not in ({_BAD}) then n else 0 end) / sum(n), 4) satisfaction_rate, "
           f"sum(case when level in ({_BAD}) then n else 0 end) bad_reviews")
_BY = {"window": ("window", "window"), "staff": ("staff_id, staff_name", "staff_id, max(staff_name) staff_name"),
       "item": ("item_code, item_name", "item_code, max(item_name) item_name")}


def _blank_to_none(out: list[dict]) -> list[dict]:
    """The summaries keep a missing window, staff or item as '': the API says null."""
    for r in out:
        for k in ("window", "staff_id", "item_code"):
            if r.get(k) == "":
                r[k] = None
    return out


def _summed(f: Filter, cols: str, day_table: str, month_table: str, level: bool = True,
            month_as: str = "month") -> tuple[str, list]:
    """The selection's rows of a summary, whole months from its month table and the
    days at the ends from its day table, as one subquery (summaries.spans). In the month
    parts the month column is named `month_as` for the outer query."""
    parts, args = [], []
    for grain, col, lo, hi in summaries.spans(f.since_day, f.until_day):
        sql, a = where(("window = ?", f.window), ("staff_id = ?", f.staff_id),
                       ("level = ?", f.level if level else None), (f"{col} >= ?", lo), (f"{col} <= ?", hi))
        table, when = (day_table, "day") if grain == "day" else (month_table, f"month {month_as}")
        parts.append(f"select {when}, {cols} from {table}{sql}")
        args += a
    return "(" + " union all ".join(parts) + ")", args


def stats(db, f: Filter, by: str | None) -> dict | list[dict]:
    """Count, mean score, satisfaction rate and bad reviews, overall or per window, staff
    member or item: from the summaries when they hold the selection (per item, whole
    months), else from the ratings."""
    if by == "item":
        # kept per month, and without the staff: only a selection of whole months fits
        if f.summarised() and f.staff_id is None and (f.since_day or "-01").endswith("-01") \
                and _month_end(f.until_day):
            sql, args = where(("window = ?", f.window), ("level = ?", f.level),
                              ("month >= ?", f.since_day and f.since_day[:7]),
                              ("month <= ?", f.until_day and f.until_day[:7]))
            return _blank_to_none(rows(db, f"select {_BY['item'][1]}, {_SUMMED} from summary_item{sql} "
                                           f"group by item_code order by item_code", args))
    elif f.summarised():
        src, args = _summed(f, "window, staff_id, staff_name, level, n", "summary_day", "summary_month")
        if by is None:
            return rows(db, f"select {_SUMMED} from {src}", args)[0]
        key, pick = _BY[by]
        first = key.split(",")[0]
        return _blank_to_none(rows(db, f"select {pick}, {_SUMMED} from {src} group by {first} order by {first}",
                                   args))
    sql, args = f.sql()
    if by is None:
        return rows(db, f"select {_RAW} from ratings{sql}", args)[0]
    key, pick = _BY[by]
    first = key.split(",")[0]
    return rows(db, f"select {pick}, {_RAW} from ratings{sql} group by {first} order by {first}", args)


def parts(db, f: Filter) -> list[dict]:
    """Count, mean score, satisfaction rate and bad reviews of each itemised part of the
    version-2 ratings in the selection (f.level filters the overall level)."""
    if f.summarised() and f.level is None:
        src, args = _summed(f, "window, staff_id, part, level, n", "summary_parts_day", "summary_parts_month",
                            level=False)
    else:
        sql, args = f.sql()
        src = (f"(select j.key part, j.value level, 1 n from (select parts from ratings{sql}) r, "
               f"json_each(r.parts) j where r.parts is not null)")
    return rows(db, f"select part, {_SUMMED} from {src} group by part", args)


def _month_end(day: str | None) -> bool:
    if day is None:
        return True
    y, m, d = map(int, day.split("-"))
    return (date(y, m, d) + timedelta(days=1)).day == 1


BUCKETS = {"day": "%Y-%m-%d", "week": "%Y-W%W", "month": "%Y-%m"}


def trend(db, f: Filter, bucket: str, utc_offset_s: int) -> list[dict]:
    """The same figures per day, week or month of the hall's time (per month from the
    month summaries, so that years of them are quick)."""
    if f.summarised():
        if bucket == "month":
            src, args = _summed(f, "level, n", "summary_day", "summary_month", month_as="day")
            key = "substr(day, 1, 7)"
        else:
            sql, args = f.summary_sql()
            src, key = f"summary_day{sql}", f"strftime('{BUCKETS[bucket]}', day)"
        return rows(db, f"select {key} bucket, {_SUMMED} from {src} group by bucket order by bucket", args)
    sql, args = f.sql()
    key = f"strftime('{BUCKETS[bucket]}', rated_at + {int(utc_offset_s)}, 'unixepoch')"
    return rows(db, f"select {key} bucket, {_RAW} from ratings{sql} group by bucket order by bucket", args)


def heatmap(db, window: str | None, since_month: str | None, until_month: str | None) -> list[dict]:
    """Ratings and bad reviews by weekday (0 = Monday) and hour, over whole months."""
    sql, args = where(("window = ?", window or summaries.HALL), ("month >= ?", since_month),
                      ("month <= ?", until_month))
    return rows(db, f"select weekday, hour, sum(n) ratings, sum(bad) bad_reviews from summary_hour{sql} "
                    f"group by weekday, hour order by weekday, hour", args)


def reasons(db, f: Filter) -> list[dict]:
    """How often each reason was given in a bad review (a review may give several)."""
    src, args = _summed(f, "window, staff_id, reason, n", "summary_reason", "summary_reason_month", level=False)
    return rows(db, f"select reason, sum(n) n from {src} group by reason order by n desc", args)


def count(db) -> int:
    return forwarding.total(db)


def newest_received_at(db) -> float | None:
    """When the gateway stored its latest rating (the last row written: no scan)."""
    r = one(db, "select received_at from ratings order by rowid desc limit 1")
    return r["received_at"] if r else None


def by_id(db) -> dict[str, dict]:
    """Every rating by ID: for the simulator's accounting of a run."""
    return {r["id"]: r for r in db.query("select * from ratings")}
