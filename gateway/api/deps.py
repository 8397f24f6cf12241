"""What the API's endpoints share: the settings, a database connection, authentication."""

from __future__ import annotations

import secrets
from datetime import date, datetime
from zoneinfo import ZoneInfo

from fastapi import HTTPException, Request

from .. import store
from ..config import Config
from ..registry import Registry


def cfg(request: Request) -> Config:
    return request.app.state.cfg


def gateway(request: Request):
    return request.app.state.gateway


def db(request: Request):
    d = store.open_db(request.app.state.cfg.db_path)
    try:
        yield d
    finally:
        d.conn.close()


def registry(request: Request):
    g = request.app.state.gateway
    d = store.open_db(request.app.state.cfg.db_path)
    try:
        yield Registry(request.app.state.cfg, d, g.ingest if g is not None else None)
    finally:
        d.conn.close()


def auth(request: Request) -> None:
    given = request.headers.get("authorization", "")
    want = f"Bearer {request.app.state.cfg.api_token}"
    if not secrets.compare_digest(given.encode(), want.encode()):
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


def where(*conditions: tuple[str, object]) -> tuple[str | None, list]:
    """SQL conditions for the filters given: each (clause with one ?, value) is kept when
    the value is not None. Returns (where clause or None, arguments)."""
    kept = [(clause, value) for clause, value in conditions if value is not None]
    return " and ".join(c for c, _ in kept) or None, [v for _, v in kept]


def to_epoch(value: str | None, tz: str, end: bool = False) -> float | None:
    """'2026-11-23' (a whole day in the hall's time zone) or an ISO date-time -> Unix
    seconds. With end, a bare date means the end of that day."""
    if value is None:
        return None
    zone = ZoneInfo(tz)
    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            t = datetime(d.year, d.month, d.day, tzinfo=zone).timestamp()
            return t + 86400 if end else t
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise HTTPException(422, f"not a date (YYYY-MM-DD) or ISO date-time: {value!r}") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=zone)).timestamp()


def iso(t: float | None, tz: str) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, ZoneInfo(tz)).isoformat(timespec="seconds")
