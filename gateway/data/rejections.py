"""Refused messages: a count per reason kept forever, the details of the newest."""

from __future__ import annotations

from . import rows, where

DETAILS_KEPT = 10_000  # a flood of garbage must not fill the disk


def record(db, reason: str, dev: str | None, topic: str, detail: str, payload: bytes, at: float) -> None:
    """Count a rejection and keep its detail, inside the caller's transaction."""
    db.execute("insert into rejection_counts (reason, n, last_at) values (?, 1, ?) "
               "on conflict(reason) do update set n = n + 1, last_at = excluded.last_at", [reason, at])
    rid = db.execute("insert into rejections (at, reason, dev, topic, detail, payload) values (?, ?, ?, ?, ?, ?)",
                     [at, reason, dev, topic[:200], detail[:300],
                      payload[:512].decode("utf-8", "replace")]).lastrowid
    if rid % 1000 == 0:
        db.execute("delete from rejections where id <= ?", [rid - DETAILS_KEPT])


def counts(db) -> dict[str, int]:
    return {r["reason"]: r["n"] for r in rows(db, "select reason, n from rejection_counts")}


def recent(db, reason: str | None, limit: int) -> list[dict]:
    sql, args = where(("reason = ?", reason))
    return rows(db, f"select * from rejections{sql} order by id desc limit ?", [*args, limit])
