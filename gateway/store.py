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

from .broker import password_hash
from .protocol import ID_RE, LEVELS, Rating


def open_db(path: Path | str) -> sqlite_utils.Database:
    path = Path(path)
    # The database holds every device's signing key: only the gateway's user may read it.
    # SQLite gives the WAL and shared-memory files it makes the database file's mode.
    path.touch(mode=0o600)
    for f in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if f.exists() and f.stat().st_mode & 0o077:
            f.chmod(0o600)
    conn = sqlite3.connect(str(path), timeout=10, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=10000")
    db = sqlite_utils.Database(conn)
    if str(path) not in _schema_checked:
        migrate(db)
        _schema_checked.add(str(path))
    return db


_schema_checked: set[str] = set()


def _create(db: sqlite_utils.Database) -> None:
    """Version 1 of the schema: the first release's tables."""
    db["devices"].create({
        "dev": str, "model": str, "window": str, "state": str, "key": str, "pw_hash": str,
        "prev_key": str, "prev_key_until": float, "fw": str, "created_at": float,
        "changed_at": float, "online": int, "status_at": float, "health": str, "health_at": float,
        "sync_at": float, "sync_boot": int, "sync_up": int, "clock_offset": float,
    }, pk="dev", if_not_exists=True)
    db["sessions"].create({
        "id": int, "window": str, "staff_id": str, "staff_name": str,
        "started_at": float, "ended_at": float,
    }, pk="id", if_not_exists=True)
    db["sessions"].create_index(["window", "started_at"], if_not_exists=True)
    db["cases"].create({
        "serial": str, "window": str, "staff_id": str, "staff_name": str,
        "item_code": str, "item_name": str, "items": str, "completed_at": float, "rating_id": str,
    }, pk="serial", if_not_exists=True)
    db["cases"].create_index(["window", "completed_at"], if_not_exists=True)
    db["ratings"].create({
        "id": str, "dev": str, "seq": int, "level": str, "score": int, "reason": str,
        "case_no": str, "window": str, "staff_id": str, "staff_name": str,
        "item_code": str, "item_name": str, "items": str, "tag_source": str,
        "device_ts": int, "tsync": int, "boot": int, "up": int, "fw": str, "sig": str,
        "received_at": float, "rated_at": float, "clock": str, "repeat_of": str,
        "forward_state": str, "forwarded_at": float, "attempts": int,
        "next_attempt_at": float, "last_error": str, "solo": int,
    }, pk="id", if_not_exists=True)
    db["ratings"].create_index(["forward_state", "next_attempt_at"], if_not_exists=True)
    db["ratings"].create_index(["window", "rated_at"], if_not_exists=True)
    db["ratings"].create_index(["staff_id", "rated_at"], if_not_exists=True)
    db["ratings"].create_index(["rated_at"], if_not_exists=True)
    db["rejections"].create({
        "id": int, "at": float, "reason": str, "dev": str, "topic": str,
        "detail": str, "payload": str,
    }, pk="id", if_not_exists=True)
    db["rejection_counts"].create({"reason": str, "n": int, "last_at": float}, pk="reason",
                                  if_not_exists=True)


def _held(db: sqlite_utils.Database) -> None:
    """Version 2: a rating can be held for an admin (its ID taken by another rating, or
    its case completed at another window) instead of being refused."""
    db.execute("alter table ratings add column held text")
    db.execute("create index if not exists ratings_held on ratings (held) where held is not null")


MIGRATIONS = (_create, _held)  # schema version N is MIGRATIONS[:N]; append, never edit
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(db: sqlite_utils.Database) -> None:
    """Bring the schema to SCHEMA_VERSION (PRAGMA user_version), each step in its own
    transaction. A database of the first release (user_version 0, tables present) is at
    version 1."""
    conn = db.conn
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == 0 and "ratings" in db.table_names():
        version = 1
    if version > SCHEMA_VERSION:
        raise RuntimeError(f"the database is at schema version {version}, newer than this gateway's "
                           f"{SCHEMA_VERSION}: run the newer release")
    for step in range(version, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[step](db)
            conn.execute(f"PRAGMA user_version = {step + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


# -- devices ---------------------------------------------------------------------------
MODELS = ("five-button", "tablet")


def _new_secrets() -> tuple[str, str]:
    return secrets.token_hex(32), secrets.token_urlsafe(18)


def register_device(db, dev: str, window: str, model: str = "five-button") -> dict:
    """Register a device; returns its credentials. The key is shown here and never again."""
    if not ID_RE.match(dev) or dev == "gateway":
        raise ValueError(f"bad device ID {dev!r}: use 1-32 letters, digits, '-' or '_', not 'gateway'")
    if not ID_RE.match(window):
        raise ValueError(f"bad window {window!r}: use 1-32 letters, digits, '-' or '_'")
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}: one of {', '.join(MODELS)}")
    if db["devices"].count_where("dev = ?", [dev]):
        raise ValueError(f"device {dev} is already registered")
    key, password = _new_secrets()
    now = time.time()
    with db.conn:
        db["devices"].insert({
            "dev": dev, "model": model, "window": window, "state": "provisioned", "key": key,
            "pw_hash": password_hash(password), "fw": None, "created_at": now, "changed_at": now,
            "online": 0,
        })
    return {"dev": dev, "key": key, "password": password, "window": window, "model": model}


def rotate_credentials(db, dev: str, grace_s: float) -> dict:
    """New key and password. Ratings the device signed with the old key before it got the
    new one still verify for grace_s seconds (0: the old key is dead at once)."""
    d = _live_device(db, dev)
    key, password = _new_secrets()
    now = time.time()
    with db.conn:
        db["devices"].update(dev, {"key": key, "pw_hash": password_hash(password), "changed_at": now,
                                   "prev_key": d["key"] if grace_s > 0 else None,
                                   "prev_key_until": now + grace_s if grace_s > 0 else None})
    return {"dev": dev, "key": key, "password": password, "window": d["window"], "model": d["model"]}


def move_device(db, dev: str, window: str) -> dict:
    if not ID_RE.match(window):
        raise ValueError(f"bad window {window!r}: use 1-32 letters, digits, '-' or '_'")
    d = _live_device(db, dev)
    with db.conn:
        db["devices"].update(dev, {"window": window, "changed_at": time.time()})
    return {**d, "window": window}


def retire_device(db, dev: str) -> None:
    _live_device(db, dev)
    with db.conn:
        db["devices"].update(dev, {"state": "retired", "online": 0, "changed_at": time.time()})


def _live_device(db, dev: str) -> dict:
    d = device(db, dev)
    if d is None:
        raise LookupError(f"no device {dev}")
    if d["state"] == "retired":
        raise ValueError(f"device {dev} is retired")
    return d


def verify_keys(d: dict, now: float) -> list[bytes]:
    """The keys a rating from this device may be signed with: the current one, and the
    previous one during its grace period after a rotation."""
    keys = [bytes.fromhex(d["key"])]
    if d.get("prev_key") and (d.get("prev_key_until") or 0) > now:
        keys.append(bytes.fromhex(d["prev_key"]))
    return keys


def device(db, dev: str) -> dict | None:
    return _one(db, "select * from devices where dev = ?", [dev])


def device_hashes(db) -> dict[str, str]:
    return {r["dev"]: r["pw_hash"] for r in db["devices"].rows_where("state != 'retired'")}


def devices_at(db, window: str) -> list[dict]:
    return list(db["devices"].rows_where("window = ? and state != 'retired'", [window]))


# -- sessions and cases ----------------------------------------------------------------
def _one(db, sql: str, args: list) -> dict | None:
    """The first row of a query as a dict; plain SQL because it is on the ingest path."""
    cur = db.conn.execute(sql, args)
    row = cur.fetchone()
    return dict(zip([c[0] for c in cur.description], row, strict=True)) if row else None


def session_at(db, window: str, ts: float) -> dict | None:
    return _one(db, "select * from sessions where window = ? and started_at <= ? "
                    "and (ended_at is null or ended_at > ?) order by started_at desc limit 1", [window, ts, ts])


def sign_in(db, window: str, staff_id: str, staff_name: str, at: float) -> dict:
    with db.conn:
        _end_session(db, window, at)
        db["sessions"].insert({"window": window, "staff_id": staff_id, "staff_name": staff_name,
                               "started_at": at, "ended_at": None})
    return session_at(db, window, at)


def sign_out(db, window: str, at: float) -> bool:
    """End the window's session; False if nobody was signed in."""
    with db.conn:
        return _end_session(db, window, at) > 0


def _end_session(db, window, at) -> int:
    return db.execute("update sessions set ended_at = ? where window = ? and ended_at is null",
                      [at, window]).rowcount


def complete_case(db, serial: str, window: str, items: list[tuple[str, str]], at: float) -> dict:
    """Record a completed case (办件). A batch case lists several items under one serial
    number and still gets one rating; the first item names the case."""
    s = session_at(db, window, at)
    if s is None:
        raise ValueError(f"no staff signed in at window {window}")
    if not items:
        raise ValueError("a case needs at least one item")
    row = {"serial": serial, "window": window, "staff_id": s["staff_id"], "staff_name": s["staff_name"],
           "item_code": items[0][0], "item_name": items[0][1],
           "items": json.dumps([{"code": c, "name": n} for c, n in items], ensure_ascii=False),
           "completed_at": at, "rating_id": None}
    with db.conn:
        if db["cases"].count_where("serial = ?", [serial]):
            raise ValueError(f"case {serial} is already recorded")
        db["cases"].insert(row)
    return row


def latest_case(db, window: str) -> dict | None:
    rows = list(db["cases"].rows_where("window = ?", [window], order_by="completed_at desc", limit=1))
    return rows[0] if rows else None


# -- ratings (the ingest path: callers hold the transaction) ----------------------------
CLOCK_FUTURE_S = 300  # a synced clock this far ahead of arrival is wrong
CLOCK_PAST_S = 7 * 86400  # a synced clock this far behind, with nothing to back it, is doubted
CLOCK_AGREE_S = 300  # how far a synced clock may stray from the same boot's sync record


def store_rating(db, r: Rating, d: dict, received_at: float) -> tuple[str, dict]:
    """Tag and insert one verified rating, inside the caller's transaction.
    Returns ("stored"|"duplicate", row); row["held"] says why a rating waits for an admin.

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
    rated_at, clock = rating_time(r, d, received_at)
    row = {
        "id": rid, "dev": r.dev, "seq": r.seq, "level": r.level, "score": LEVELS[r.level][1],
        "reason": ",".join(r.reason), "case_no": r.case, "device_ts": r.ts, "tsync": int(r.tsync),
        "boot": r.boot, "up": r.up, "fw": r.fw, "sig": r.sig, "received_at": received_at,
        "rated_at": rated_at, "clock": clock, "repeat_of": None, "forward_state": "pending",
        "forwarded_at": None, "attempts": 0, "next_attempt_at": received_at, "last_error": None,
    }
    row.update(_tags(db, r, d["window"], rated_at))
    row["held"] = held or row["held"]
    if row["held"]:
        row["forward_state"] = "held"
    db.conn.execute(f"insert into ratings ({', '.join(row)}) values ({', '.join('?' * len(row))})",
                    list(row.values()))
    if row["tag_source"] == "case" and not row["repeat_of"] and not row["held"]:
        db.conn.execute("update cases set rating_id = ? where serial = ?", [rid, r.case])
    return "stored", row


def rating_time(r: Rating, d: dict, received_at: float) -> tuple[float, str]:
    """When the citizen pressed, and how sure we are: 'device' (the device's synced
    clock), 'corrected' (an unsynced clock placed by the sync record of the same boot),
    'arrival' (no way to tell; flagged) or 'suspect' (a synced clock that cannot be right:
    in the future, before the device was registered, at odds with its own uptime since
    the boot's sync, or long past with nothing to back it)."""
    same_boot = d.get("sync_boot") == r.boot and d.get("sync_at") is not None
    corrected = d["sync_at"] + (r.up - d["sync_up"]) / 1000 if same_boot else None
    if r.tsync:
        ts = r.ts / 1000
        if corrected is not None:
            if abs(ts - corrected) > CLOCK_AGREE_S:
                return min(corrected, received_at), "suspect"
        elif ts < received_at - CLOCK_PAST_S:
            return received_at, "suspect"
        if ts > received_at + CLOCK_FUTURE_S or ts < (d.get("created_at") or 0) - CLOCK_FUTURE_S:
            return received_at, "suspect"
        return ts, "device"
    if corrected is not None:
        return corrected, "corrected"
    return received_at, "arrival"


def _tags(db, r: Rating, window: str, at: float) -> dict:
    """Window, staff, case and item for a rating: from the case the device showed, else
    from the session active at the window when the citizen pressed. A case completed at
    another window is never the device's to rate: the rating is held, the case untouched."""
    held = None
    if r.case:
        c = _one(db, "select * from cases where serial = ?", [r.case])
        if c and c["window"] == window:
            repeat = c["rating_id"] if c["rating_id"] and c["rating_id"] != r.id else None
            return {"window": c["window"], "staff_id": c["staff_id"], "staff_name": c["staff_name"],
                    "item_code": c["item_code"], "item_name": c["item_name"], "items": c["items"],
                    "tag_source": "case", "repeat_of": repeat, "held": None,
                    "forward_state": "repeat" if repeat else "pending"}
        if c:
            held = "foreign_case"
    s = session_at(db, window, at)
    source = "foreign_case" if held else ("unknown_case" if r.case else "session") if s else "none"
    return {"window": window, "staff_id": s and s["staff_id"], "staff_name": s and s["staff_name"],
            "item_code": None, "item_name": None, "items": None, "tag_source": source, "held": held}


def release(db, rid: str) -> None:
    """An admin found a held rating genuine: it is counted and forwarded from now on. Its
    `held` reason stays, as the record of why it waited."""
    row = db.conn.execute("select forward_state from ratings where id = ?", [rid]).fetchone()
    if row is None:
        raise LookupError(f"no rating {rid}")
    if row[0] != "held":
        raise ValueError(f"rating {rid} is not held")
    db.conn.execute("update ratings set forward_state = 'pending', next_attempt_at = ? where id = ?",
                    [time.time(), rid])
    db.conn.commit()


REJECTION_DETAILS_KEPT = 10_000  # counts are kept forever, details of the newest only


def record_rejection(db, reason: str, dev: str | None, topic: str, detail: str, payload: bytes,
                     at: float) -> None:
    """Count a rejection and keep its detail, inside the caller's transaction."""
    db.execute("insert into rejection_counts (reason, n, last_at) values (?, 1, ?) "
               "on conflict(reason) do update set n = n + 1, last_at = excluded.last_at", [reason, at])
    rid = db["rejections"].insert({"at": at, "reason": reason, "dev": dev, "topic": topic[:200],
                                   "detail": detail[:300],
                                   "payload": payload[:512].decode("utf-8", "replace")}).last_pk
    if rid % 1000 == 0:  # a flood of garbage must not fill the disk
        db.execute("delete from rejections where id <= ?", [rid - REJECTION_DETAILS_KEPT])


def rejection_counts(db) -> dict[str, int]:
    return {r["reason"]: r["n"] for r in db.query("select reason, n from rejection_counts")}


def forward_counts(db) -> dict[str, int]:
    return {r["forward_state"]: r["n"] for r in
            db.query("select forward_state, count(*) n from ratings group by forward_state")}


def health_json(row: dict) -> dict | None:
    """The device's last heartbeat; None for a row no view can show (stored by an older
    release, or edited by hand): one device's data never breaks a list of all of them."""
    try:
        h = json.loads(row["health"], parse_constant=lambda _: None) if row.get("health") else None
    except ValueError:
        return None
    return h if isinstance(h, dict) else None
