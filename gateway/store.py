"""The gateway's durable store: one SQLite file in WAL mode, written through sqlite-utils.

Every write that a message or an ack depends on is committed (synchronous=FULL) before
the gateway answers. Ratings are keyed by rating ID (device:seq), which makes every
store idempotent: a resent rating finds its row and is acked again, never stored twice.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from pathlib import Path

import sqlite_utils

from .protocol import ID_RE, LEVELS, Rating, Rejected

SCHEMA_VERSION = 1


def open_db(path: Path | str) -> sqlite_utils.Database:
    conn = sqlite3.connect(str(path), timeout=10, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=10000")
    db = sqlite_utils.Database(conn)
    _ensure_schema(db)
    return db


def _ensure_schema(db: sqlite_utils.Database) -> None:
    if "ratings" in db.table_names():
        return
    with db.conn:
        db["devices"].create({
            "dev": str, "model": str, "window": str, "state": str, "key": str, "pw_hash": str,
            "fw": str, "created_at": float, "online": int, "status_at": float,
            "health": str, "health_at": float, "clock_offset": float, "synced_at": float,
        }, pk="dev", if_not_exists=True)
        db["sessions"].create({
            "id": int, "window": str, "staff_id": str, "staff_name": str,
            "started_at": float, "ended_at": float,
        }, pk="id", if_not_exists=True)
        db["sessions"].create_index(["window", "started_at"], if_not_exists=True)
        db["cases"].create({
            "serial": str, "window": str, "staff_id": str, "staff_name": str,
            "item_code": str, "item_name": str, "completed_at": float, "rating_id": str,
        }, pk="serial", if_not_exists=True)
        db["ratings"].create({
            "id": str, "dev": str, "seq": int, "level": str, "score": int, "reason": str,
            "case_no": str, "window": str, "staff_id": str, "staff_name": str,
            "item_code": str, "item_name": str, "tag_source": str,
            "device_ts": int, "tsync": int, "boot": int, "up": int, "fw": str, "sig": str,
            "received_at": float, "repeat_of": str,
            "forward_state": str, "forwarded_at": float, "attempts": int,
            "next_attempt_at": float, "last_error": str,
        }, pk="id", if_not_exists=True)
        db["ratings"].create_index(["forward_state", "next_attempt_at"], if_not_exists=True)
        db["ratings"].create_index(["window", "received_at"], if_not_exists=True)
        db["rejections"].create({
            "id": int, "at": float, "reason": str, "dev": str, "topic": str,
            "detail": str, "payload": str,
        }, pk="id", if_not_exists=True)
        db["rejections"].create_index(["reason"], if_not_exists=True)
        db["meta"].insert({"key": "schema_version", "value": str(SCHEMA_VERSION)}, pk="key", replace=True)


# -- devices ---------------------------------------------------------------------------
def add_device(db, dev: str, window: str, model: str = "five-button") -> dict:
    """Register a device; returns its credentials. The key is shown here and never again."""
    from .broker import password_hash

    if not ID_RE.match(dev) or dev == "gateway":
        raise ValueError(f"bad device ID {dev!r}: use 1-32 letters, digits, '-' or '_'")
    if db["devices"].count_where("dev = ?", [dev]):
        raise ValueError(f"device {dev} is already registered")
    key = secrets.token_hex(32)
    password = secrets.token_urlsafe(18)
    with db.conn:
        db["devices"].insert({
            "dev": dev, "model": model, "window": str(window), "state": "active", "key": key,
            "pw_hash": password_hash(password), "fw": None, "created_at": time.time(),
            "online": 0,
        })
    return {"dev": dev, "key": key, "password": password, "window": str(window)}


def device(db, dev: str) -> dict | None:
    rows = list(db["devices"].rows_where("dev = ?", [dev]))
    return rows[0] if rows else None


def device_hashes(db) -> dict[str, str]:
    return {r["dev"]: r["pw_hash"] for r in db["devices"].rows_where("state = 'active'")}


def devices_at(db, window: str) -> list[dict]:
    return list(db["devices"].rows_where("window = ? and state = 'active'", [window]))


# -- sessions and cases ----------------------------------------------------------------
def session_at(db, window: str, ts: float) -> dict | None:
    rows = list(db["sessions"].rows_where(
        "window = ? and started_at <= ? and (ended_at is null or ended_at > ?)", [window, ts, ts],
        order_by="started_at desc", limit=1))
    return rows[0] if rows else None


def sign_in(db, window: str, staff_id: str, staff_name: str, at: float) -> dict:
    with db.conn:
        _end_session(db, window, at)
        db["sessions"].insert({"window": window, "staff_id": staff_id, "staff_name": staff_name,
                               "started_at": at, "ended_at": None})
    return session_at(db, window, at)


def sign_out(db, window: str, at: float) -> None:
    with db.conn:
        _end_session(db, window, at)


def _end_session(db, window, at):
    db.execute("update sessions set ended_at = ? where window = ? and ended_at is null", [at, window])


def complete_case(db, serial: str, window: str, item_code: str, item_name: str, at: float) -> dict:
    s = session_at(db, window, at)
    if s is None:
        raise ValueError(f"no staff signed in at window {window}")
    row = {"serial": serial, "window": window, "staff_id": s["staff_id"], "staff_name": s["staff_name"],
           "item_code": item_code, "item_name": item_name, "completed_at": at, "rating_id": None}
    with db.conn:
        if db["cases"].count_where("serial = ?", [serial]):
            raise ValueError(f"case {serial} is already recorded")
        db["cases"].insert(row)
    return row


def latest_case(db, window: str) -> dict | None:
    rows = list(db["cases"].rows_where("window = ?", [window], order_by="completed_at desc", limit=1))
    return rows[0] if rows else None


# -- ratings ---------------------------------------------------------------------------
def store_rating(db, r: Rating, window: str, received_at: float) -> tuple[str, dict]:
    """Tag and commit one verified rating. Returns ("stored"|"duplicate", row).

    Raises Rejected("replay") when the rating ID exists with other content: a sequence
    number is never reused by an honest device.
    """
    old = list(db["ratings"].rows_where("id = ?", [r.id]))
    if old:
        if old[0]["sig"] == r.sig:
            return "duplicate", old[0]
        raise Rejected("replay", f"{r.id} already stored with other content")
    row = {
        "id": r.id, "dev": r.dev, "seq": r.seq, "level": r.level, "score": LEVELS[r.level][1],
        "reason": ",".join(r.reason), "case_no": r.case, "device_ts": r.ts, "tsync": int(r.tsync),
        "boot": r.boot, "up": r.up, "fw": r.fw, "sig": r.sig, "received_at": received_at,
        "repeat_of": None, "forward_state": "pending", "forwarded_at": None, "attempts": 0,
        "next_attempt_at": received_at, "last_error": None,
    }
    row.update(_tags(db, r, window, received_at))
    with db.conn:
        db["ratings"].insert(row)
        if row["case_no"] and row["tag_source"] == "case" and not row["repeat_of"]:
            db.execute("update cases set rating_id = ? where serial = ?", [r.id, r.case])
    return "stored", row


def _tags(db, r: Rating, window: str, received_at: float) -> dict:
    """Window, staff, case and item for a rating: from the case the device showed, else
    from the session active at the device's own time (arrival time if its clock was unset)."""
    if r.case:
        c = list(db["cases"].rows_where("serial = ?", [r.case]))
        if c:
            c = c[0]
            repeat = c["rating_id"] if c["rating_id"] and c["rating_id"] != r.id else None
            return {"window": c["window"], "staff_id": c["staff_id"], "staff_name": c["staff_name"],
                    "item_code": c["item_code"], "item_name": c["item_name"], "tag_source": "case",
                    "repeat_of": repeat, "forward_state": "repeat" if repeat else "pending"}
    at = r.ts if r.tsync else received_at
    s = session_at(db, window, at)
    return {"window": window, "staff_id": s and s["staff_id"], "staff_name": s and s["staff_name"],
            "item_code": None, "item_name": None,
            "tag_source": ("unknown_case" if r.case else "session") if s else "none"}


def record_rejection(db, reason: str, dev: str | None, topic: str, detail: str, payload: bytes) -> None:
    with db.conn:
        db["rejections"].insert({"at": time.time(), "reason": reason, "dev": dev, "topic": topic[:200],
                                 "detail": detail[:300], "payload": payload[:512].decode("utf-8", "replace")})


def rejection_counts(db) -> dict[str, int]:
    return {r["reason"]: r["n"] for r in db.query("select reason, count(*) n from rejections group by reason")}


def forward_counts(db) -> dict[str, int]:
    return {r["forward_state"]: r["n"] for r in
            db.query("select forward_state, count(*) n from ratings group by forward_state")}


def health_json(row: dict) -> dict | None:
    return json.loads(row["health"]) if row.get("health") else None
