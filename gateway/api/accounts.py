"""Logging in and out, accounts and their tokens, and the audit log. Every change to an
account or a token is audited in its own transaction."""

from __future__ import annotations

import time
from typing import Annotated, Literal, get_args

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from .. import auth
from ..data import accounts, audit, transaction
from ..errors import Conflict, NotFound
from . import deps

public = APIRouter(prefix="/api/v1", tags=["accounts"])
router = APIRouter(prefix="/api/v1", tags=["accounts"])

NAME = r"^[A-Za-z0-9_.-]{1,32}$"
WINDOW = r"^[A-Za-z0-9_-]{1,32}$"
Role = Literal["admin", "supervisor", "viewer", "technician", "business"]
assert set(get_args(Role)) == set(auth.ROLES)
UserPath = Annotated[str, Path(pattern=NAME, description="the account's name")]
Password = Annotated[str, Field(min_length=1, max_length=200)]
NewPasswordText = Annotated[str, Field(min_length=auth.PASSWORD_MIN, max_length=200,
                                       description=f"at least {auth.PASSWORD_MIN} characters, not the account's name")]
admins = [deps.needs("accounts")]


class Login(BaseModel):
    user: str = Field(pattern=NAME)
    password: Password


class NewUser(BaseModel):
    name: str = Field(pattern=NAME)
    role: Role
    windows: list[Annotated[str, Field(pattern=WINDOW)]] = Field(
        [], max_length=200, description="a supervisor's windows (the work orders they handle); only a supervisor's")
    password: NewPasswordText | SkipJsonSchema[None] = Field(
        None, description="for people; a business account has API tokens instead")
    model_config = {"json_schema_extra": {"allOf": [
        {"if": {"properties": {"role": {"const": "business"}}}, "then": {"not": {"required": ["password"]}},
         "else": {"required": ["password"]}},
        {"if": {"properties": {"role": {"not": {"const": "supervisor"}}}},
         "then": {"properties": {"windows": {"maxItems": 0}}}},
    ]}}

    @model_validator(mode="after")
    def what_each_role_has(self):
        if self.name in auth.RESERVED:
            raise ValueError(f"{self.name} is a name the audit log keeps for the gateway itself")
        if self.role in auth.PEOPLE and self.password is None:
            raise ValueError(f"a {self.role} needs a password")
        if self.role not in auth.PEOPLE and self.password is not None:
            raise ValueError("a business account logs in with API tokens, not a password")
        if self.windows and self.role != "supervisor":
            raise ValueError("only a supervisor has windows")
        return self


class NewPassword(BaseModel):
    password: NewPasswordText


class OwnPassword(BaseModel):
    old: Password
    new: NewPasswordText


class NewToken(BaseModel):
    label: str = Field(min_length=1, max_length=80, pattern=r"^[^\x00-\x1f\x7f]*$",
                       description="what the token is for, e.g. the queue system")


def _view(u: dict, cfg) -> dict:
    return {"name": u["name"], "role": u["role"], "windows": u["windows"], "disabled": u["disabled"],
            "created_at": deps.iso(u["created_at"], cfg.timezone),
            "changed_at": deps.iso(u["changed_at"], cfg.timezone)}


def _check_password(name: str, password: str) -> None:
    problem = auth.password_problem(name, password)
    if problem:
        raise HTTPException(400, problem)


@public.post("/login", summary="Log in with an account's name and password; returns a token",
             responses=deps.errors(400, 401, 413, 429))
def login(body: Login, request: Request, a=Depends(deps.authenticator), cfg=Depends(deps.cfg)):
    try:
        out = a.login(body.user, body.password, request.client.host if request.client else None)
    except auth.TooManyAttempts as e:
        return JSONResponse({"detail": str(e)}, status_code=429, headers={"Retry-After": str(e.retry_after)})
    except auth.LoginRefused as e:
        return JSONResponse({"detail": str(e)}, status_code=401)
    return {**out, "expires_at": deps.iso(out["expires_at"], cfg.timezone)}


@router.get("/me", summary="Who this token belongs to, what it may do, and the hall's time zone")
def me(who=Depends(deps.principal), cfg=Depends(deps.cfg)):
    return {"name": who.name, "role": who.role, "windows": list(who.windows), "token": who.kind,
            "permissions": sorted(auth.ROLES[who.role]), "hall": cfg.hall, "timezone": cfg.timezone}


@router.post("/logout", summary="Revoke this token", responses=deps.errors(409))
def logout(who=Depends(deps.principal), d=Depends(deps.db)):
    if who.token_id is None:
        raise HTTPException(409, f"the {who.kind} token is not revoked this way")
    now = time.time()
    with transaction(d):
        accounts.revoke(d, who.token_id, now)
        audit.record(d, who.name, "token.revoke", who.token_id, now)
    return {"revoked": who.token_id}


@router.post("/me/password", summary="Change one's own password; ends one's other logins",
             responses=deps.errors(400, 403, 409, 413, 429))
def own_password(body: OwnPassword, request: Request, who=Depends(deps.principal), d=Depends(deps.db),
                 a=Depends(deps.authenticator)):
    u = accounts.user(d, who.name) if who.kind in ("login", "api") else None
    if u is None or u["pw_hash"] is None:
        raise Conflict("this account has no password")
    try:  # as limited as a login: a stolen token must not become a password by guessing
        right = a.check(who.name, body.old, request.client.host if request.client else None)
    except auth.TooManyAttempts as e:
        return JSONResponse({"detail": str(e)}, status_code=429, headers={"Retry-After": str(e.retry_after)})
    if right is None:
        raise HTTPException(403, "the old password is wrong")
    _check_password(who.name, body.new)
    now = time.time()
    with transaction(d):
        accounts.change(d, who.name, now, pw_hash=auth.hash_password(body.new))
        audit.record(d, who.name, "user.password", who.name, now)
    return {"name": who.name, "password_changed": True}


@router.get("/users", summary="Accounts", dependencies=admins)
def users(d=Depends(deps.db), cfg=Depends(deps.cfg)):
    return [_view(u, cfg) for u in accounts.users(d)]


@router.post("/users", status_code=201, summary="Add an account", responses=deps.errors(400, 409, 413))
def add_user(body: NewUser, d=Depends(deps.db), cfg=Depends(deps.cfg), who=deps.needs("accounts")):
    if body.password is not None:
        _check_password(body.name, body.password)
    now = time.time()
    pw_hash = auth.hash_password(body.password) if body.password else None
    with transaction(d):
        accounts.add_user(d, body.name, body.role, body.windows, pw_hash, now)
        audit.record(d, who.name, "user.add", body.name, now, role=body.role, windows=body.windows)
    u = accounts.user(d, body.name)
    assert u is not None
    return _view(u, cfg)


def _set(d, who, name: str, action: str, **fields) -> dict:
    now = time.time()
    with transaction(d):
        accounts.change(d, name, now, **fields)
        audit.record(d, who.name, action, name, now)
    u = accounts.user(d, name)
    assert u is not None
    return u


@router.post("/users/{name}/disable", summary="Disable an account: its logins and tokens end at once",
             responses=deps.errors(404, 409))
def disable(name: UserPath, d=Depends(deps.db), cfg=Depends(deps.cfg), who=deps.needs("accounts")):
    if name == who.name:
        raise Conflict("an admin cannot disable their own account")
    return _view(_set(d, who, name, "user.disable", disabled=1), cfg)


@router.post("/users/{name}/enable", summary="Enable a disabled account", responses=deps.errors(404))
def enable(name: UserPath, d=Depends(deps.db), cfg=Depends(deps.cfg), who=deps.needs("accounts")):
    return _view(_set(d, who, name, "user.enable", disabled=0), cfg)


@router.post("/users/{name}/password", summary="Set a new password for an account; its logins end",
             responses=deps.errors(400, 404, 409, 413))
def reset_password(name: UserPath, body: NewPassword, d=Depends(deps.db), cfg=Depends(deps.cfg),
                   who=deps.needs("accounts")):
    u = accounts.user(d, name)
    if u is None:
        raise NotFound(f"no account {name}")
    if u["role"] not in auth.PEOPLE:
        raise Conflict("a business account has no password")
    _check_password(name, body.password)
    return _view(_set(d, who, name, "user.password", pw_hash=auth.hash_password(body.password)), cfg)


@router.post("/users/{name}/tokens", status_code=201, summary="A new API token for an account, shown this once",
             responses=deps.errors(400, 404, 409, 413))
def add_token(name: UserPath, body: NewToken, d=Depends(deps.db), who=deps.needs("accounts")):
    u = accounts.user(d, name)
    if u is None:
        raise NotFound(f"no account {name}")
    if u["disabled"]:
        raise Conflict(f"account {name} is disabled")
    token, now = auth.new_token(), time.time()
    with transaction(d):
        tid = accounts.add_token(d, auth.token_hash(token), name, "api", body.label, None, now)
        audit.record(d, who.name, "token.add", tid, now, user=name, label=body.label)
    return {"id": tid, "user": name, "token": token}


@router.get("/tokens", summary="Tokens (their IDs, never the tokens)", dependencies=admins)
def tokens(d=Depends(deps.db), cfg=Depends(deps.cfg), user: str | None = Query(None, pattern=NAME)):
    return [{**t, **{k: deps.iso(t[k], cfg.timezone) for k in ("created_at", "expires_at", "revoked_at")}}
            for t in accounts.tokens(d, user)]


@router.post("/tokens/{tid}/revoke", summary="Revoke a token at once", responses=deps.errors(404))
def revoke(tid: Annotated[str, Path(pattern=r"^[0-9a-f]{16}$")], d=Depends(deps.db), who=deps.needs("accounts")):
    now = time.time()
    with transaction(d):
        t = accounts.revoke(d, tid, now)
        audit.record(d, who.name, "token.revoke", tid, now, user=t["user"])
    return {"revoked": tid}


@router.get("/audit", summary="The audit log, newest first: every change made through an account",
            dependencies=admins)
def audit_log(d=Depends(deps.db), cfg=Depends(deps.cfg), actor: str | None = Query(None, max_length=32),
              action: str | None = Query(None, max_length=40), since: deps.Since = None,
              before: int | None = Query(None, ge=1, le=2**62, description="an entry ID: the page before it"),
              limit: int = Query(100, ge=1, le=1000)):
    return [{**e, "at": deps.iso(e["at"], cfg.timezone)}
            for e in audit.entries(d, actor, action, deps.to_epoch(since, cfg.timezone), limit, before)]
