"""Who may call the API: accounts with roles, their tokens, and logging in.

A bearer token is one of
    a login token        made by POST /api/v1/login, valid session_hours, revocable
    an API token         made by an admin for an account (the hall business system's, a
                         script's), valid until revoked
    the local token      home/local.token, made at each start for the `pingjia gateway`
                         commands on this box; accepted from this box only
    the old api_token    gateway.json's single admin token, kept for one release so that a
                         hall can upgrade; every use is logged as deprecated
Only a token's SHA-256 is stored: a copy of the database lets nobody in.

Passwords are hashed with Argon2id (argon2-cffi) at OWASP's recommended parameters
(19 MiB, 2 passes, 1 lane). Login attempts are limited per account name and per client
address before any hash is computed, and at most two hashes are computed at once, so that
a flood of logins can neither guess nor exhaust the box.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path

import sqlite_utils
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .config import Config
from .data import accounts, audit, open_db, transaction
from .errors import PingjiaError

log = logging.getLogger("pingjia.auth")

# What each role may do. A supervisor acts on the work orders of their own windows only.
ROLES: dict[str, frozenset[str]] = {
    "admin": frozenset({"read", "devices:read", "devices:write", "ops:read", "ratings:release",
                        "forwarder:requeue", "work_orders:act", "hall:report", "accounts",
                        "firmware:upload"}),  # what runs on every device: an admin's call, not a technician's
    "supervisor": frozenset({"read", "devices:read", "ops:read", "work_orders:act"}),
    "viewer": frozenset({"read", "devices:read", "ops:read"}),
    "technician": frozenset({"devices:read", "devices:write", "ops:read"}),
    "business": frozenset({"hall:report"}),  # the hall business system: sign-in, sign-out, cases
}
PEOPLE = ("admin", "supervisor", "viewer", "technician")  # roles that log in with a password
PASSWORD_MIN = 10
TICKET_S = 30.0  # an event-stream ticket's life
TICKETS_MAX = 1000
RESERVED = {"local", "system", "api_token"}  # actors the audit log names for the box, the gateway, the old token
TOKEN_PREFIX = "pj_"


class LoginRefused(PingjiaError):
    pass


class TooManyAttempts(PingjiaError):
    def __init__(self, retry_after: int):
        super().__init__(f"too many failed logins: try again in {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Principal:
    name: str  # what the audit log records as the actor
    role: str
    windows: tuple[str, ...] = ()
    kind: str = "login"  # login, api, local, legacy
    token_id: str | None = None

    def can(self, permission: str) -> bool:
        return permission in ROLES.get(self.role, ())

    def acts_on(self, window: str | None) -> bool:
        """Whether this principal may act on a work order of this window."""
        return self.role == "admin" or (self.role == "supervisor" and window in self.windows)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
_hashing = threading.BoundedSemaphore(2)
_DUMMY = _hasher.hash(secrets.token_urlsafe(16))  # checked for unknown names: no timing tells them apart


def hash_password(password: str) -> str:
    with _hashing:
        return _hasher.hash(password)


def check_password(pw_hash: str | None, password: str) -> bool:
    with _hashing:
        try:
            return _hasher.verify(pw_hash or _DUMMY, password) and pw_hash is not None
        except (VerificationError, InvalidHashError):
            return False


def password_problem(name: str, password: str) -> str | None:
    if len(password) < PASSWORD_MIN:
        return f"a password needs at least {PASSWORD_MIN} characters"
    if len(password) > 200:
        return "a password has at most 200 characters"
    if password.lower() == name.lower():
        return "a password must not be the account's name"
    return None


@dataclass
class Throttle:
    """Failed attempts per key in a sliding window; bounded, the oldest keys forgotten."""
    limit: int
    window_s: float
    max_keys: int = 10_000
    seen: OrderedDict = field(default_factory=OrderedDict)

    def retry_after(self, key: str, now: float) -> int:
        times = [t for t in self.seen.get(key, ()) if t > now - self.window_s]
        if len(times) < self.limit:
            return 0
        return int(times[0] + self.window_s - now) + 1

    def failed(self, key: str, now: float) -> None:
        times = [t for t in self.seen.pop(key, ()) if t > now - self.window_s][-self.limit:]
        self.seen[key] = [*times, now]
        while len(self.seen) > self.max_keys:
            self.seen.popitem(last=False)

    def forgive(self, key: str, at: float) -> None:
        """Take back one attempt counted in advance, that turned out right."""
        times = self.seen.get(key)
        if times and at in times:
            times.remove(at)

    def clear(self, key: str) -> None:
        self.seen.pop(key, None)


class Attempts:
    """Password attempts, limited per (name, client), per name and per client. Each
    attempt is counted *before* its hash is computed, under a lock, so that guesses sent
    in parallel cannot all pass the check; a right one is forgiven afterwards. The name's
    own limit is higher than the pair's, so that nobody locks an account out by failing
    five times from their own address; it stops a guess spread over many addresses."""

    def __init__(self):
        self._lock = threading.Lock()
        self.limits = {"pair": Throttle(5, 900), "name": Throttle(50, 900), "client": Throttle(30, 900)}

    def begin(self, name: str, client: str | None) -> float:
        """Count an attempt; returns its time, or raises TooManyAttempts."""
        keys = self._keys(name, client)
        with self._lock:
            now = time.time()
            wait = max(t.retry_after(keys[k], now) for k, t in self.limits.items())
            if wait:
                raise TooManyAttempts(wait)
            for k, t in self.limits.items():
                t.failed(keys[k], now)
            return now

    def succeeded(self, name: str, client: str | None, at: float) -> None:
        keys = self._keys(name, client)
        with self._lock:
            self.limits["pair"].clear(keys["pair"])
            for k in ("name", "client"):
                self.limits[k].forgive(keys[k], at)

    @staticmethod
    def _keys(name: str, client: str | None) -> dict[str, str]:
        return {"pair": f"{name}|{client}", "name": name, "client": client or ""}


class Authenticator:
    """Turns a bearer token into a Principal, and a name and password into a login token."""

    def __init__(self, cfg: Config, local_token: str | None = None):
        self.cfg = cfg
        self._db: sqlite_utils.Database | None = None
        self._lock = threading.Lock()
        self._local = token_hash(local_token) if local_token else None
        self._legacy = token_hash(cfg.api_token) if cfg.api_token else None
        self._legacy_warned = 0.0
        self.attempts = Attempts()  # logins, and the old password of a password change
        self._tickets: OrderedDict[str, tuple[bytes, float]] = OrderedDict()

    def ticket(self, header: bytes) -> str:
        """A single-use ticket, good for TICKET_S, that stands for this bearer header on
        GET /api/v1/events: a browser's EventSource cannot send a header, and a token in
        a URL would be kept in logs and history."""
        t = secrets.token_urlsafe(24)
        now = time.monotonic()
        with self._lock:
            for k in [k for k, (_, until) in self._tickets.items() if until < now]:
                del self._tickets[k]
            if len(self._tickets) >= TICKETS_MAX:
                self._tickets.popitem(last=False)
            self._tickets[t] = (header, now + TICKET_S)
        return t

    def redeem(self, ticket: str) -> bytes | None:
        with self._lock:
            header, until = self._tickets.pop(ticket, (None, 0.0))
        return header if header is not None and until >= time.monotonic() else None

    @property
    def db(self):
        if self._db is None:
            self._db = open_db(self.cfg.db_path)
        return self._db

    def resolve(self, header: bytes, client: str | None, server: str | None = None) -> Principal | None:
        """client, server: the connection's addresses; the local token counts only when
        both ends are this box."""
        if not header.startswith(b"Bearer "):
            return None
        token = header[7:].decode("latin-1")
        h = token_hash(token)
        if self._local and secrets.compare_digest(h, self._local):
            here = _loopback(client) or (client is not None and client == server)
            return Principal("local", "admin", kind="local") if here else None
        if self._legacy and secrets.compare_digest(h, self._legacy):
            now = time.monotonic()
            if now - self._legacy_warned > 3600:
                log.warning("a request used gateway.json's api_token, which goes away in the next release: "
                            "give each admin an account (`pingjia gateway user add`)")
                self._legacy_warned = now
            return Principal("api_token", "admin", kind="legacy")
        if not token.startswith(TOKEN_PREFIX):
            return None
        with self._lock:
            row = accounts.token_owner(self.db, h, time.time())
        if row is None:
            return None
        return Principal(row["user"], row["role"], tuple(row["windows"]), row["kind"], h[:16])

    def check(self, name: str, password: str, client: str | None) -> dict | None:
        """The account, if this is its password (and it is a person's, enabled); each
        call counts against the limits."""
        at = self.attempts.begin(name, client)
        with self._lock:
            user = accounts.user(self.db, name)
        ok = check_password(user["pw_hash"] if user else None, password)
        if not ok or user is None or user["disabled"] or user["role"] not in PEOPLE:
            return None
        self.attempts.succeeded(name, client, at)
        return user

    def login(self, name: str, password: str, client: str | None) -> dict:
        user = self.check(name, password, client)
        if user is None:
            raise LoginRefused("wrong name or password, or the account is disabled")
        now = time.time()
        token = new_token()
        expires = now + self.cfg.session_hours * 3600
        with self._lock:
            accounts.add_token(self.db, token_hash(token), name, "login", f"login from {client}", expires, now)
        return {"token": token, "user": name, "role": user["role"], "windows": user["windows"],
                "expires_at": expires}


def _loopback(client: str | None) -> bool:
    try:
        return client is not None and ip_address(client).is_loopback
    except ValueError:
        return False


def write_local_token(home: Path) -> str:
    """A fresh token for this box's `pingjia gateway` commands, readable by the gateway's
    user only."""
    token = new_token()
    path = home / "local.token"
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.chmod(0o600)
    tmp.write_text(token + "\n")
    tmp.replace(path)
    return token


def account_token(db, name: str, role: str, label: str) -> str:
    """An API token for an account made for a program (no password), made first if need
    be: how a hall's own set-up (and the simulator) gives the business system its token
    without a running gateway."""
    now = time.time()
    with transaction(db):
        if accounts.user(db, name) is None:
            accounts.add_user(db, name, role, [], None, now)
            audit.record(db, "local", "user.add", name, now, role=role)
        token = new_token()
        tid = accounts.add_token(db, token_hash(token), name, "api", label, None, now)
        audit.record(db, "local", "token.add", tid, now, user=name, label=label)
    return token
