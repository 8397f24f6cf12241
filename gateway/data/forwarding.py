"""The forwarder's outbox, which is the ratings table itself: what is due, and what
became of each request (forwarded, failed, to retry later, dead)."""

from __future__ import annotations

import random
import time

from . import rows, transaction

BACKOFF_MIN = 1.0  # a rating the platform's reply left out waits this, doubling per attempt
BACKOFF_MAX = 300.0


def due(db, now: float, limit: int) -> list[dict]:
    return rows(db, "select * from ratings where forward_state = 'pending' and next_attempt_at <= ? "
                    "order by next_attempt_at limit ?", [now, limit])  # index order: no sort


def _ids(ids) -> str:
    return ",".join("?" * len(ids))


def forwarded(db, ids: list[str], at: float) -> None:
    db.execute(f"update ratings set forward_state = 'forwarded', forwarded_at = ?, attempts = attempts + 1 "
               f"where id in ({_ids(ids)})", [at, *ids])


def failed(db, ids: list[str], error: str) -> None:
    """The request failed as a whole: the ratings stay first in line."""
    db.execute(f"update ratings set attempts = attempts + 1, last_error = ? where id in ({_ids(ids)})",
               [error, *ids])


def retry_later(db, found: list[dict], error: str) -> None:
    """Each waits longer the more attempts it has had, with jitter: retries must not align."""
    now = time.time()
    with transaction(db):
        for r in found:
            delay = min(BACKOFF_MAX, BACKOFF_MIN * 2 ** min(r["attempts"], 16)) * random.uniform(0.5, 1.0)
            db.execute("update ratings set attempts = attempts + 1, next_attempt_at = ?, last_error = ? "
                       "where id = ?", [now + delay, error, r["id"]])


def solo(db, ids: list[str], error: str) -> None:
    """A batch was refused whole: send these one by one, to find the bad record."""
    db.execute(f"update ratings set solo = 1, last_error = ? where id in ({_ids(ids)})", [error, *ids])


def dead(db, reasons: dict[str, str]) -> None:
    with transaction(db):
        for rid, why in reasons.items():
            db.execute("update ratings set forward_state = 'dead', attempts = attempts + 1, last_error = ? "
                       "where id = ?", [why[:500], rid])


def requeue(db, ids: list[str] | None) -> int:
    """Put dead letters back in the outbox (after the cause was corrected)."""
    sql = ("update ratings set forward_state = 'pending', attempts = 0, solo = 0, next_attempt_at = ?, "
           "last_error = null where forward_state = 'dead'")
    args: list = [time.time()]
    if ids is not None:
        sql += f" and id in ({_ids(ids)})"
        args += ids
    with transaction(db):
        return db.execute(sql, args).rowcount


# -- views --------------------------------------------------------------------------
def shift_clock(db, delta: float) -> int:
    """The box's clock stepped by delta seconds: when each waiting rating is next tried."""
    return db.execute("update ratings set next_attempt_at = next_attempt_at + ? where forward_state = 'pending'",
                      [delta]).rowcount


def backlog(db) -> dict:
    """What waits to be forwarded, its oldest, the errors it met, the states of all."""
    pending = rows(db, "select count(*) n, min(received_at) oldest, max(attempts) max_attempts from ratings "
                       "where forward_state = 'pending'")[0]
    errors = rows(db, "select last_error, count(*) n from ratings where forward_state = 'pending' "
                      "and last_error is not null group by last_error order by n desc limit 5")
    return {**pending, "errors": errors, "states": states(db)}


STATES = ("pending", "dead", "held", "repeat")  # all but 'forwarded', which is the rest


def states(db) -> dict[str, int]:
    """Ratings per forwarding state. Counting 10 million forwarded ones would read the
    whole index: the others are counted on it, and forwarded is what remains of the total."""
    out = {s: db.conn.execute("select count(*) from ratings where forward_state = ?", [s]).fetchone()[0]
           for s in STATES}
    out["forwarded"] = total(db) - sum(out.values())
    return {s: n for s, n in out.items() if n}


def total(db) -> int:
    """How many ratings are stored. Ratings are evidence and never deleted, so the largest
    rowid is their number: read at once, where count(*) reads every row."""
    return db.conn.execute("select coalesce(max(rowid), 0) from ratings").fetchone()[0]


def dead_letters(db, limit: int) -> list[dict]:
    return rows(db, "select id, window, staff_id, case_no, level, attempts, last_error, received_at from ratings "
                    "where forward_state = 'dead' order by received_at limit ?", [limit])
