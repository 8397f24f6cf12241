"""Accounts and their tokens. Only a token's SHA-256 is kept; its first 16 hex digits are
its ID, by which it is listed and revoked."""

from __future__ import annotations

import json

from ..errors import Conflict, NotFound
from . import one, rows, transaction


def _user(row: dict | None) -> dict | None:
    if row is not None:
        row["windows"] = json.loads(row["windows"])
        row["disabled"] = bool(row["disabled"])
    return row


def user(db, name: str) -> dict | None:
    return _user(one(db, "select * from users where name = ?", [name]))


def users(db) -> list[dict]:
    return [_user(r) for r in rows(db, "select * from users order by name")]  # type: ignore[misc]


def add_user(db, name: str, role: str, windows: list[str], pw_hash: str | None, at: float) -> None:
    with transaction(db):
        if user(db, name) is not None:
            raise Conflict(f"account {name} exists")
        db.execute("insert into users (name, role, windows, pw_hash, disabled, created_at, changed_at) "
                   "values (?, ?, ?, ?, 0, ?, ?)", [name, role, json.dumps(windows), pw_hash, at, at])


def change(db, name: str, at: float, **fields) -> None:
    """Set role, windows, pw_hash or disabled. Disabling an account or changing its
    password or role ends its logins; disabling also revokes its API tokens."""
    with transaction(db):
        if user(db, name) is None:
            raise NotFound(f"no account {name}")
        if "windows" in fields:
            fields["windows"] = json.dumps(fields["windows"])
        sets = ", ".join(f"{k} = ?" for k in fields)
        db.execute(f"update users set {sets}, changed_at = ? where name = ?", [*fields.values(), at, name])
        kinds = ("login", "api") if fields.get("disabled") else ("login",)
        db.execute(f"update tokens set revoked_at = ? where user = ? and revoked_at is null "
                   f"and kind in ({','.join('?' * len(kinds))})", [at, name, *kinds])


def add_token(db, token_hash: str, name: str, kind: str, label: str | None, expires_at: float | None,
              at: float) -> str:
    with transaction(db):
        db.execute("insert into tokens (hash, user, kind, label, created_at, expires_at) values (?, ?, ?, ?, ?, ?)",
                   [token_hash, name, kind, label, at, expires_at])
        # expired and long-revoked tokens are of no use to anyone: keep the table small
        db.execute("delete from tokens where (expires_at < ? or revoked_at < ?)", [at - 86400 * 30, at - 86400 * 30])
    return token_hash[:16]


def token_owner(db, token_hash: str, now: float) -> dict | None:
    """The live token's account, or None (unknown, expired, revoked, or its account
    disabled). A read only: it runs for every request, on the API's event loop."""
    row = one(db, "select t.user, t.kind, u.role, u.windows from tokens t join users u "
                  "on u.name = t.user where t.hash = ? and t.revoked_at is null and u.disabled = 0 "
                  "and (t.expires_at is null or t.expires_at > ?)", [token_hash, now])
    if row is None:
        return None
    row["windows"] = json.loads(row["windows"])
    return row


def tokens(db, name: str | None = None) -> list[dict]:
    sql = "select substr(hash, 1, 16) id, user, kind, label, created_at, expires_at, revoked_at " \
          "from tokens" + (" where user = ?" if name else "") + " order by created_at"
    return rows(db, sql, [name] if name else [])


def revoke(db, token_id: str, at: float) -> dict:
    """Revoke one token by its ID; returns its row."""
    with transaction(db):
        found = rows(db, "select hash, user, kind, revoked_at from tokens where substr(hash, 1, 16) = ?", [token_id])
        if len(found) != 1:
            raise NotFound(f"no token {token_id}")
        if found[0]["revoked_at"] is None:
            db.execute("update tokens set revoked_at = ? where hash = ?", [at, found[0]["hash"]])
        return found[0]
