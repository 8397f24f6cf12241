"""Work orders (差评工单): one for every bad review, opened in the transaction that stores
it, and the steps that close it, each recorded with who took it and when. The rating
itself never changes (seed 003 art. 27): a review found invalid keeps its rating, and its
order says why and who decided."""

from __future__ import annotations

from ..errors import Conflict, NotFound
from ..protocol import BAD_LEVELS
from . import one, rows, transaction, where

# step: (the states it may follow, the state it leads to)
STEPS = {
    "accept": (("open",), "accepted"),
    "contact": (("accepted",), "contacted"),
    "rectify": (("contacted",), "rectifying"),
    "close": (("rectifying",), "closed"),
    "invalid": (("open", "accepted", "contacted", "rectifying"), "invalid"),
}
STATES = ("open", "accepted", "contacted", "rectifying", "closed", "invalid")
INVALID_KINDS = {"mistaken": "误评", "malicious": "恶意评价"}
FIELDS = ("rating_id", "window", "staff_id", "staff_name", "case_no", "item_code", "item_name", "level", "reason")


def wanted(rating: dict) -> bool:
    """Whether a stored rating opens a work order: a bad review that counts (not a repeat
    of a rated case, not held for an admin)."""
    return rating["level"] in BAD_LEVELS and not rating.get("repeat_of") and rating.get("forward_state") != "held"


def open_for(db, rating: dict, at: float) -> dict:
    """Open the order of a bad review, inside the caller's transaction; returns it."""
    values = [rating["id" if f == "rating_id" else f] for f in FIELDS]
    oid = db.execute(f"insert into work_orders ({', '.join(FIELDS)}, opened_at, state, updated_at) "
                     f"values ({', '.join('?' * len(FIELDS))}, ?, 'open', ?)", [*values, at, at]).lastrowid
    db.execute("insert into work_order_steps (order_id, at, actor, step) values (?, ?, 'system', 'opened')", [oid, at])
    return get(db, oid)


def get(db, oid: int) -> dict:
    o = one(db, "select * from work_orders where id = ?", [oid])
    if o is None:
        raise NotFound(f"no work order {oid}")
    return o


def steps(db, oid: int) -> list[dict]:
    return rows(db, "select at, actor, step, note, kind from work_order_steps where order_id = ? order by id", [oid])


def step(db, oid: int, name: str, actor: str, at: float, note: str | None = None, kind: str | None = None,
         complex_case: bool | None = None, feedback: bool = False) -> dict:
    """Take one step on an order. feedback: a finished order is to be reported to the
    platform. Raises Conflict when the order is not in a state this step follows."""
    after, to = STEPS[name]
    with transaction(db):
        o = get(db, oid)
        if o["state"] not in after:
            raise Conflict(f"work order {oid} is {o['state']}: {name} follows {' or '.join(after)}")
        sets: dict = {"state": to, "updated_at": at}
        if name == "contact":
            sets["contacted_at"] = at
        if to in ("closed", "invalid"):
            sets["closed_at"] = at
            if feedback:
                sets.update(feedback_state="pending", next_feedback_at=at)
        if name == "invalid":
            sets["invalid_kind"] = kind
        if complex_case is not None:
            sets["complex"] = int(complex_case)
        db.execute(f"update work_orders set {', '.join(f'{k} = ?' for k in sets)} where id = ?", [*sets.values(), oid])
        db.execute("insert into work_order_steps (order_id, at, actor, step, note, kind) values (?, ?, ?, ?, ?, ?)",
                   [oid, at, actor, name, note, kind])
        return get(db, oid)


def listed(db, state: str | None, window: str | None, staff_id: str | None, since: float | None,
           until: float | None, limit: int | None = None, offset: int = 0, unfinished: bool = False,
           newest_first: bool = False) -> list[dict]:
    sql, args = where(("state = ?", state), ("window = ?", window), ("staff_id = ?", staff_id),
                      ("opened_at >= ?", since), ("opened_at < ?", until))
    if unfinished:
        sql += (" and " if sql else " where ") + OPEN
    page = " limit ? offset ?" if limit is not None else ""
    order = "opened_at desc, id desc" if newest_first else "opened_at, id"
    return rows(db, f"select * from work_orders{sql} order by {order}{page}",
                [*args, *([limit, offset] if limit is not None else [])])


OPEN = "state in ('open', 'accepted', 'contacted', 'rectifying')"  # so written, the state index is used


def unfinished(db, window: str | None = None) -> list[dict]:
    sql, args = where(("window = ?", window))
    return rows(db, f"select * from work_orders where {OPEN}{sql.replace(' where ', ' and ')} order by opened_at",
                args)


def shift_clock(db, delta: float, before: float) -> int:
    """The box's clock stepped by delta seconds: the times an unfinished order's deadlines
    run from (what was written before `before`, in the old clock) and, after a step back,
    a finished one's pending feedback, said in the new clock. Its steps stay as recorded
    (the audit log has the step)."""
    n = db.execute(f"update work_orders set opened_at = opened_at + ?, contacted_at = case when contacted_at <= ? "
                   f"then contacted_at + ? else contacted_at end where {OPEN} and opened_at <= ?",
                   [delta, before, delta, before]).rowcount
    if delta < 0:  # a due time: after a step forwards it only comes early, which does no harm
        db.execute("update work_orders set next_feedback_at = next_feedback_at + ? where feedback_state = 'pending'",
                   [delta])
    return n


def mark_alerted(db, oid: int, what: str) -> None:
    """Remember that this alert (e.g. contact:red) was raised, so it is raised once."""
    db.execute("update work_orders set alerted = alerted || ? || ',' where id = ?", [what, oid])


def rectification(db, since: float | None, until: float | None, window: str | None = None) -> dict:
    """整改率: of the valid bad reviews (not found invalid) opened in the period, the
    share closed with a rectification."""
    sql, args = where(("opened_at >= ?", since), ("opened_at < ?", until), ("window = ?", window))
    counts = {r["state"]: r["n"] for r in rows(db, f"select state, count(*) n from work_orders{sql} "
                                                   f"group by state", args)}
    total = sum(counts.values())
    valid = total - counts.get("invalid", 0)
    return {"work_orders": total, "valid": valid, "invalid": counts.get("invalid", 0),
            "closed": counts.get("closed", 0), "states": {s: counts.get(s, 0) for s in STATES},
            "rectification_rate": round(counts.get("closed", 0) / valid, 4) if valid else None}


def watch(db, now: float, threshold: int = 3) -> list[dict]:
    """Staff with `threshold` or more valid bad reviews in the last 7 days or the last
    year (seed 003 art. 26)."""
    week, year = now - 7 * 86400, now - 365 * 86400
    return rows(db, """select staff_id, max(staff_name) staff_name,
                       sum(opened_at >= ?) week, count(*) year from work_orders
                       where state != 'invalid' and staff_id is not null and opened_at >= ? and opened_at <= ?
                       group by staff_id having week >= ? or year >= ? order by year desc, staff_id""",
                [week, year, now, threshold, threshold])


# -- feedback to the platform (where its profile takes it) -----------------------------
def feedback_due(db, now: float, limit: int) -> list[dict]:
    """Finished orders to report, with their last step's note; only once the platform has
    the rating they are about."""
    return rows(db, "select w.*, (select note from work_order_steps s where s.order_id = w.id order by s.id desc "
                    "limit 1) note from work_orders w join ratings r on r.id = w.rating_id "
                    "where w.feedback_state = 'pending' and w.next_feedback_at <= ? and r.forward_state = 'forwarded' "
                    "order by w.next_feedback_at limit ?", [now, limit])


def feedback_sent(db, ids: list[int]) -> None:
    db.execute(f"update work_orders set feedback_state = 'sent', feedback_error = null where id in "
               f"({','.join('?' * len(ids))})", ids)


def feedback_failed(db, oid: int, error: str, retry_at: float | None) -> None:
    """retry_at None: the platform refused it for good."""
    db.execute("update work_orders set feedback_attempts = feedback_attempts + 1, feedback_error = ?, "
               "feedback_state = ?, next_feedback_at = coalesce(?, next_feedback_at) where id = ?",
               [error[:500], "pending" if retry_at else "dead", retry_at, oid])
