"""What the API's endpoints share: the settings, a database connection, authentication."""

from __future__ import annotations

import queue
import re
from datetime import date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import Depends, HTTPException, Query, Request, Security
from fastapi.security import HTTPBearer
from pydantic import BaseModel, BeforeValidator, Field

from ..auth import Principal
from ..config import Config
from ..data import open_db
from ..registry import Registry
from .guard import PRINCIPAL


def cfg(request: Request) -> Config:
    return request.app.state.cfg


def gateway(request: Request):
    return request.app.state.gateway


def db(request: Request):
    """A connection of the API's pool: opening one per request (its checks and pragmas)
    cost more than most pages' queries. A connection is in one request at a time."""
    pool: queue.SimpleQueue = request.app.state.db_pool
    try:
        d = pool.get_nowait()
    except queue.Empty:
        d = open_db(request.app.state.cfg.db_path)
    try:
        yield d
    finally:
        if d.conn.in_transaction:  # a request that failed inside one: nothing of it is kept
            d.conn.rollback()
        pool.put(d)


def authenticator(request: Request):
    return request.app.state.auth


def registry(request: Request):
    g = request.app.state.gateway
    d = open_db(request.app.state.cfg.db_path)
    try:
        yield Registry(request.app.state.cfg, d, g.ingest if g is not None else None)
    finally:
        d.conn.close()


bearer = HTTPBearer(auto_error=False, description="a login token (POST /api/v1/login) or an account's API token")


def principal(request: Request, _=Security(bearer)) -> Principal:
    """Who is calling: found by the guard (guard.py) before any body was read; declared
    here so that the OpenAPI document says each route needs a token."""
    return request.scope[PRINCIPAL]


def needs(permission: str):
    """A route's dependency: the caller's role must have this permission (auth.ROLES)."""
    def check(who: Principal = Depends(principal)) -> Principal:
        if not who.can(permission):
            raise HTTPException(403, f"a {who.role} may not do this")
        return who
    check.__name__ = f"needs_{permission.replace(':', '_')}"
    return Depends(check)


class Problem(BaseModel):
    detail: str = Field(description="what is wrong, in words")


_SAYS = {400: "Malformed request", 401: "Missing, wrong, expired or revoked bearer token",
         403: "The caller's role may not do this", 404: "No such thing",
         409: "Conflicts with what is stored", 413: "Body too large", 429: "Too many attempts",
         503: "Not available in this process"}


def errors(*codes: int) -> dict:
    """OpenAPI `responses` for these error answers, all shaped {"detail": "..."}."""
    return {c: {"model": Problem, "description": _SAYS[c]} for c in codes}


_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _day_or_moment(v):
    """Only what the schema says (a date, or an RFC 3339 date-time with its offset):
    pydantic alone would also take a number as a Unix time."""
    if v is None or isinstance(v, (date, datetime)):
        return v
    if isinstance(v, str) and (_DAY.match(v) or _MOMENT.match(v)):
        return v.upper()
    raise ValueError("a day (YYYY-MM-DD) or an RFC 3339 date-time with its offset (2026-11-23T09:00:00+08:00)")


Since = Annotated[date | datetime | None, BeforeValidator(_day_or_moment), Query(
    description="from this day (YYYY-MM-DD, in the hall's time zone) or date-time on")]
Until = Annotated[date | datetime | None, BeforeValidator(_day_or_moment), Query(
    description="up to this day (inclusive) or date-time")]


def to_epoch(value: date | datetime | None, tz: str, end: bool = False) -> float | None:
    """A day (in the hall's time zone) or a date-time -> Unix seconds. With end, a day
    means the end of that day."""
    if value is None:
        return None
    zone = ZoneInfo(tz)
    if not isinstance(value, datetime):
        t = datetime(value.year, value.month, value.day, tzinfo=zone).timestamp()
        return t + 86400 if end else t
    return (value if value.tzinfo else value.replace(tzinfo=zone)).timestamp()


def days(since, until) -> tuple[str | None, str | None] | None:
    """The bounds as hall days (YYYY-MM-DD), when both are days or absent; else None."""
    def day(v):
        return v.isoformat() if isinstance(v, date) and not isinstance(v, datetime) else None
    if any(v is not None and day(v) is None for v in (since, until)):
        return None
    return day(since), day(until)


def iso(t: float | None, tz: str) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, ZoneInfo(tz)).isoformat(timespec="seconds")
