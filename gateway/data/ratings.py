"""Ratings: storing a verified one (idempotent by rating ID), releasing a held one, and
the views admins read: lists, CSV rows, statistics."""

from __future__ import annotations

from dataclasses import dataclass

from .. import rules
from ..errors import Conflict, NotFound
from ..protocol import BAD_LEVELS, LEVELS, Rating
from . import hall, one, rows, transaction, workorders


def store(db, r: Rating, d: dict, received_at: float) -> tuple[str, dict]:
    """Tag and insert one verified rating, inside the caller's transaction. d: the
    device's row. Returns ("stored"|"duplicate", row); row["held"] says why a rating
    waits for an admin; row["work_order"] is the order a bad review opened.

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
        "reason": ",".join(r.reason), "case_no": r.case, "device_ts": r.ts, "tsync": int(r.tsync),
        "boot": r.boot, "up": r.up, "fw": r.fw, "sig": r.sig, "received_at": received_at,
        "rated_at": rated_at, "clock": clock, "forwarded_at": None, "attempts": 0,
        "next_attempt_at": received_at, "last_error": None,
        **rules.tags(r, d["window"], case, session),
    }
    if held:
        row.update(held=held, forward_state="held")
    db.conn.execute(f"insert into ratings ({', '.join(row)}) values ({', '.join('?' * len(row))})",
                    list(row.values()))
    if row["tag_source"] == "case" and not row["repeat_of"] and not row["held"]:
        hall.mark_rated(db, r.case, rid)
    if workorders.wanted(row):
        row["work_order"] = workorders.open_for(db, row, received_at)
    return "stored", row


def release(db, rid: str, at: float) -> dict | None:
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


def stats(db, f: Filter, by: str | None) -> dict | list[dict]:
    """Count, mean score, satisfaction rate and bad reviews, overall or per window or staff."""
    sql, args = f.sql()
    bad = ",".join(f"'{lv}'" for lv in sorted(BAD_LEVELS))
    agg = (f"count(*) ratings, round(avg(score), 2) mean_score, "
           f"round(1.0 * sum(level not in ({bad})) / count(*), 4) satisfaction_rate, "
           f"sum(level in ({bad})) bad_reviews")
    if by is None:
        return rows(db, f"select {agg} from ratings{sql}", args)[0]
    key = "window" if by == "window" else "staff_id, staff_name"
    return rows(db, f"select {key}, {agg} from ratings{sql} group by {key} order by {key.split(',')[0]}", args)


BUCKETS = {"day": "%Y-%m-%d", "week": "%Y-W%W", "month": "%Y-%m"}


def trend(db, f: Filter, bucket: str, utc_offset_s: int) -> list[dict]:
    """Count, mean score, satisfaction rate and bad reviews per day, week or month of the
    hall's time (utc_offset_s: its zone's offset; the zones of China keep no summer time)."""
    sql, args = f.sql()
    bad = ",".join(f"'{lv}'" for lv in sorted(BAD_LEVELS))
    key = f"strftime('{BUCKETS[bucket]}', rated_at + {int(utc_offset_s)}, 'unixepoch')"
    return rows(db, f"select {key} bucket, count(*) ratings, round(avg(score), 2) mean_score, "
                    f"round(1.0 * sum(level not in ({bad})) / count(*), 4) satisfaction_rate, "
                    f"sum(level in ({bad})) bad_reviews from ratings{sql} group by bucket order by bucket", args)


def count(db) -> int:
    return db.conn.execute("select count(*) from ratings").fetchone()[0]


def by_id(db) -> dict[str, dict]:
    """Every rating by ID: for the simulator's accounting of a run."""
    return {r["id"]: r for r in db.query("select * from ratings")}
