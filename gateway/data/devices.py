"""The device registry: who may connect, with which key, at which window, and how each
device last reported its health and its clock."""

from __future__ import annotations

import json
import secrets
import time

from ..broker import password_hash
from ..errors import Conflict, NotFound
from ..protocol import ID_RE, MODELS
from . import one, rows, transaction, where


def _new_secrets() -> tuple[str, str]:
    return secrets.token_hex(32), secrets.token_urlsafe(18)


def register(db, dev: str, window: str, model: str = "five-button") -> dict:
    """Register a device; returns its credentials. The key is shown here and never again."""
    if not ID_RE.match(dev) or dev == "gateway":
        raise Conflict(f"bad device ID {dev!r}: use 1-32 letters, digits, '-' or '_', not 'gateway'")
    if not ID_RE.match(window):
        raise Conflict(f"bad window {window!r}: use 1-32 letters, digits, '-' or '_'")
    if model not in MODELS:
        raise Conflict(f"unknown model {model!r}: one of {', '.join(MODELS)}")
    key, password = _new_secrets()
    now = time.time()
    with transaction(db):
        if get(db, dev):
            raise Conflict(f"device {dev} is already registered")
        db.execute("insert into devices (dev, model, window, state, key, pw_hash, created_at, changed_at, online) "
                   "values (?, ?, ?, 'provisioned', ?, ?, ?, ?, 0)",
                   [dev, model, window, key, password_hash(password), now, now])
    return {"dev": dev, "key": key, "password": password, "window": window, "model": model}


def rotate(db, dev: str, grace_s: float) -> dict:
    """New key and password. Ratings the device signed with the old key before it got the
    new one still verify for grace_s seconds (0: the old key is dead at once)."""
    key, password = _new_secrets()
    now = time.time()
    with transaction(db):
        d = _live(db, dev)
        db.execute("update devices set key = ?, pw_hash = ?, changed_at = ?, prev_key = ?, prev_key_until = ? "
                   "where dev = ?", [key, password_hash(password), now, d["key"] if grace_s > 0 else None,
                                     now + grace_s if grace_s > 0 else None, dev])
    return {"dev": dev, "key": key, "password": password, "window": d["window"], "model": d["model"]}


def move(db, dev: str, window: str) -> dict:
    if not ID_RE.match(window):
        raise Conflict(f"bad window {window!r}: use 1-32 letters, digits, '-' or '_'")
    with transaction(db):
        d = _live(db, dev)
        db.execute("update devices set window = ?, changed_at = ? where dev = ?", [window, time.time(), dev])
    return {**d, "window": window}


def retire(db, dev: str) -> None:
    with transaction(db):
        _live(db, dev)
        db.execute("update devices set state = 'retired', online = 0, changed_at = ? where dev = ?",
                   [time.time(), dev])


def _live(db, dev: str) -> dict:
    d = get(db, dev)
    if d is None:
        raise NotFound(f"no device {dev}")
    if d["state"] == "retired":
        raise Conflict(f"device {dev} is retired")
    return d


def get(db, dev: str) -> dict | None:
    return one(db, "select * from devices where dev = ?", [dev])


def listed(db, state: str | None = None, window: str | None = None) -> list[dict]:
    sql, args = where(("state = ?", state), ("window = ?", window))
    return rows(db, f"select * from devices{sql} order by dev", args)


def password_hashes(db) -> dict[str, str]:
    """What the broker's password file holds: every device not retired."""
    return {r["dev"]: r["pw_hash"] for r in rows(db, "select dev, pw_hash from devices where state != 'retired'")}


def stale(db, before: float) -> list[str]:
    """Devices in service with no heartbeat since `before`."""
    return [r["dev"] for r in rows(db, "select dev from devices where state = 'active' "
                                       "and coalesce(health_at, 0) < ? order by dev", [before])]


def shift_clock(db, delta: float, before: float) -> int:
    """The box's clock stepped by delta seconds: each device's last-heard times, its sync
    record (gateway time at a known uptime) and its old key's grace, said in the new clock;
    each only if written before `before` (in the old clock)."""
    cols = ("health_at", "status_at", "sync_at")
    sets = ", ".join(f"{c} = case when {c} <= ? then {c} + ? else {c} end" for c in cols)
    return db.execute(f"update devices set {sets}, prev_key_until = prev_key_until + ?",
                      [v for _ in cols for v in (before, delta)] + [delta]).rowcount


def unsynced_since(db, at: float) -> list[str]:
    """Online devices in service whose clock record is older than `at`."""
    return [r["dev"] for r in rows(db, "select dev from devices where state = 'active' and online = 1 "
                                       "and coalesce(sync_at, 0) < ? order by dev", [at])]


def at_window(db, window: str) -> list[dict]:
    return rows(db, "select * from devices where window = ? and state != 'retired'", [window])


def windows(db) -> list[str]:
    """The windows that have a device."""
    return [r["window"] for r in rows(db, "select distinct window from devices where state != 'retired' "
                                          "order by window")]


def verify_keys(d: dict, now: float) -> list[bytes]:
    """The keys a rating from this device may be signed with: the current one, and the
    previous one during its grace period after a rotation."""
    keys = [bytes.fromhex(d["key"])]
    if d.get("prev_key") and (d.get("prev_key_until") or 0) > now:
        keys.append(bytes.fromhex(d["prev_key"]))
    return keys


# -- what devices report (the ingest path: callers hold the transaction) ----------------
def activate(db, dev: str) -> None:
    db.execute("update devices set state = 'active' where dev = ? and state = 'provisioned'", [dev])


_OLD_OUTBOX = "(case when json_valid(health) then json_extract(health, '$.outbox') end)"  # a bad old row: none


def set_health(db, dev: str, health: dict, at: float) -> None:
    """The heartbeat, and the run of heartbeats its outbox has not shrunk in (while not
    empty): the column's old value and the old heartbeat are what SQLite reads here."""
    db.execute(f"""update devices set health = ?, health_at = ?, fw = coalesce(?, fw),
                   outbox_rises = case when ? is null or ? = 0 then 0
                                       when ? > coalesce({_OLD_OUTBOX}, 0) then outbox_rises + 1
                                       when ? = {_OLD_OUTBOX} then outbox_rises
                                       else 0 end
                   where dev = ?""",
               [json.dumps(health, ensure_ascii=False), at, health.get("fw"), *[health.get("outbox")] * 4, dev])


def set_online(db, dev: str, online: bool, at: float) -> None:
    db.execute("update devices set online = ?, status_at = ? where dev = ?", [int(online), at, dev])


def set_sync(db, dev: str, at: float, boot: int, up: int, offset: float) -> None:
    db.execute("update devices set sync_at = ?, sync_boot = ?, sync_up = ?, clock_offset = ? where dev = ?",
               [at, boot, up, offset, dev])


def health(row: dict) -> dict | None:
    """The device's last heartbeat; None for a row no view can show (stored by an older
    release, or edited by hand): one device's data never breaks a list of all of them."""
    try:
        h = json.loads(row["health"], parse_constant=lambda _: None) if row.get("health") else None
    except ValueError:
        return None
    return h if isinstance(h, dict) else None
