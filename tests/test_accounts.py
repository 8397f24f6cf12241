"""Accounts and roles against a real gateway over real HTTP: each role against each
endpoint (one table), logins limited, tokens revocable and worthless when copied out of
the database, the old single token still an admin's for this release, with a warning."""

import sqlite3
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from gateway import auth
from simulator.harness import Hall

PASSWORD = "correct horse battery"
PEOPLE = ("admin", "supervisor", "viewer", "technician")
ROLES = (*PEOPLE, "business")
R = {"admin", "supervisor", "viewer"}  # who reads ratings, work orders, the event stream
D = R | {"technician"}  # who reads devices and the gateway's operations
ALL = set(ROLES)

# (method, path, body, who may): every endpoint of the API but the public ones. A body of
# {} and unknown names make an allowed call fail harmlessly (422, 404) after the check.
TABLE = [
    ("POST", "/api/v1/windows/W01/sign-in", {}, {"admin", "business"}),
    ("POST", "/api/v1/windows/W99/sign-out", None, {"admin", "business"}),
    ("POST", "/api/v1/cases", {}, {"admin", "business"}),
    ("PUT", "/api/v1/staff/S9999/photo", None, {"admin", "business"}),
    ("DELETE", "/api/v1/staff/S9999/photo", None, {"admin", "business"}),
    ("GET", "/api/v1/staff/S9999/photo", None, R),
    ("GET", "/api/v1/cases", None, R),
    ("GET", "/api/v1/windows", None, D),
    ("GET", "/api/v1/sessions", None, R),
    ("GET", "/api/v1/cases/rated-share", None, R),
    ("GET", "/api/v1/devices", None, D),
    ("POST", "/api/v1/devices", {}, {"admin", "technician"}),
    ("GET", "/api/v1/devices/nobody", None, D),
    ("POST", "/api/v1/devices/nobody/window", {}, {"admin", "technician"}),
    ("POST", "/api/v1/devices/nobody/retire", None, {"admin", "technician"}),
    ("POST", "/api/v1/devices/nobody/rotate", {}, {"admin", "technician"}),
    ("GET", "/api/v1/ratings", None, R),
    ("GET", "/api/v1/ratings.csv", None, R),
    ("GET", "/api/v1/ratings.xlsx", None, R),
    ("GET", "/api/v1/stats", None, R),
    ("POST", "/api/v1/ratings/nobody:1/release", None, {"admin"}),
    ("GET", "/api/v1/work-orders", None, R),
    ("GET", "/api/v1/work-orders/summary", None, R),
    ("GET", "/api/v1/work-orders/999999", None, R),
    ("POST", "/api/v1/work-orders/999999/steps", {}, {"admin", "supervisor"}),
    ("GET", "/api/v1/staff/watch", None, R),
    ("GET", "/api/v1/events", None, R),
    ("GET", "/api/v1/firmware", None, D),
    ("POST", "/api/v1/firmware", None, {"admin"}),
    ("DELETE", "/api/v1/firmware/" + "0" * 64, None, {"admin"}),
    ("GET", "/api/v1/rollouts", None, D),
    ("GET", "/api/v1/rollouts/999999", None, D),
    ("POST", "/api/v1/rollouts", {}, {"admin", "technician"}),
    ("POST", "/api/v1/rollouts/999999/halt", None, {"admin", "technician"}),
    ("POST", "/api/v1/rollouts/999999/resume", None, {"admin", "technician"}),
    ("POST", "/api/v1/rollouts/999999/cancel", None, {"admin", "technician"}),
    ("GET", "/api/v1/rejections", None, D),
    ("GET", "/api/v1/forwarder", None, D),
    ("GET", "/api/v1/forwarder/dead", None, D),
    ("POST", "/api/v1/forwarder/requeue", {"ids": ["nobody:1"]}, {"admin"}),
    ("GET", "/api/v1/gateway", None, D),
    ("GET", "/api/v1/me", None, ALL),
    ("POST", "/api/v1/me/password", {}, ALL),
    ("GET", "/api/v1/users", None, {"admin"}),
    ("POST", "/api/v1/users", {}, {"admin"}),
    ("POST", "/api/v1/users/nobody/disable", None, {"admin"}),
    ("POST", "/api/v1/users/nobody/enable", None, {"admin"}),
    ("POST", "/api/v1/users/nobody/password", {}, {"admin"}),
    ("POST", "/api/v1/users/nobody/tokens", {}, {"admin"}),
    ("GET", "/api/v1/tokens", None, {"admin"}),
    ("POST", "/api/v1/tokens/0000000000000000/revoke", None, {"admin"}),
    ("GET", "/api/v1/audit", None, {"admin"}),
    ("GET", "/metrics", None, D),
    ("GET", "/api/v1/hall/now", None, D),
    ("GET", "/api/v1/stats/trend", None, R),
    ("GET", "/api/v1/stats/heatmap", None, R),
    ("GET", "/api/v1/stats/reasons", None, R),
    ("GET", "/api/v1/stats/parts", None, R),
    ("POST", "/api/v1/events/ticket", None, R),
    ("POST", "/api/v1/logout", None, ALL),  # last: it revokes the token it is called with
]
PUBLIC = {("GET", "/api/v1/health"), ("POST", "/api/v1/login")}


@pytest.fixture(scope="module")
def hall(tmp_path_factory):
    h = Hall(tmp_path_factory.mktemp("acc") / "hall", devices=0, hall="acc")
    h.cfg.api_token = "the-single-token-of-the-release-before"  # a hall upgraded from it
    h.start()
    try:
        yield h
    finally:
        h.stop()


def login(h, name, password=PASSWORD):
    return httpx.post(f"{h.cfg.api_url}/api/v1/login", json={"user": name, "password": password})


@pytest.fixture(scope="module")
def tokens(hall):
    out = {}
    for role in PEOPLE:
        body = {"name": f"{role}-1", "role": role, "password": PASSWORD}
        if role == "supervisor":
            body["windows"] = ["W01"]
        assert hall.api.post("/api/v1/users", json=body).status_code == 201
        out[role] = login(hall, f"{role}-1").json()["token"]
    assert hall.api.post("/api/v1/users", json={"name": "queue", "role": "business"}).status_code == 201
    out["business"] = hall.api.post("/api/v1/users/queue/tokens", json={"label": "queue"}).json()["token"]
    return out


def call(h, token, method, path, body):
    headers = {"Authorization": f"Bearer {token}"}
    # as a stream: the events endpoint never ends
    with httpx.Client(base_url=h.cfg.api_url, timeout=10) as c, c.stream(method, path, json=body,
                                                                         headers=headers) as r:
        return r.status_code


def test_the_table_names_every_endpoint(hall):
    spec = httpx.get(f"{hall.cfg.api_url}/openapi.json").json()
    ops = {(m.upper(), p) for p, item in spec["paths"].items() for m in item}
    named = set()
    for method, path, _, _ in TABLE:
        template = path if (method, path) in ops else next(p for m, p in ops if m == method and _matches(p, path))
        named.add((method, template))
    assert ops - PUBLIC == named, "an endpoint with no line in TABLE"


def _matches(template: str, path: str) -> bool:
    a, b = template.split("/"), path.split("/")
    return len(a) == len(b) and all(x == y or x.startswith("{") for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("role", ROLES)
def test_each_role_against_each_endpoint(hall, tokens, role):
    wrong = []
    for method, path, body, allowed in TABLE:
        status = call(hall, tokens[role], method, path, body)
        if (role in allowed) == (status in (401, 403)):
            wrong.append(f"{method} {path}: {status}")
    assert not wrong, f"{role}: " + "; ".join(wrong)
    # the last call, logout, revoked the token
    assert call(hall, tokens[role], "GET", "/api/v1/me", None) == 401


def test_logins_are_limited_and_say_nothing_of_which_names_exist(hall):
    assert hall.api.post("/api/v1/users", json={"name": "guess-me", "role": "viewer", "password": PASSWORD}
                         ).status_code == 201
    unknown, wrong = login(hall, "no-such-person", "x" * 12), login(hall, "guess-me", "x" * 12)
    assert unknown.status_code == wrong.status_code == 401 and unknown.json() == wrong.json()
    for _ in range(4):
        assert login(hall, "guess-me", "y" * 12).status_code == 401
    r = login(hall, "guess-me")  # the right password, too late: the name is locked for a while
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 60
    assert login(hall, "guess-me' or '1'='1", PASSWORD).status_code == 422
    # names the audit log keeps for the gateway itself are not for accounts
    for name in ("local", "system", "api_token"):
        assert hall.api.post("/api/v1/users", json={"name": name, "role": "admin", "password": PASSWORD}
                             ).status_code == 422
    # a business account has no password to log in with
    assert hall.api.post("/api/v1/users", json={"name": "biz2", "role": "business", "password": PASSWORD}
                         ).status_code == 422


def test_tokens_revoked_reset_or_copied_out_of_the_database_are_worthless(hall):
    assert hall.api.post("/api/v1/users", json={"name": "ann", "role": "viewer", "password": PASSWORD}
                         ).status_code == 201
    t1, t2 = login(hall, "ann").json()["token"], login(hall, "ann").json()["token"]
    ok = lambda t: call(hall, t, "GET", "/api/v1/ratings", None)  # noqa: E731
    assert ok(t1) == ok(t2) == 200
    # what a copy of the database holds is a hash, not a token
    stored = [r[0] for r in sqlite3.connect(hall.cfg.db_path).execute("select hash from tokens where user = 'ann'")]
    assert auth.token_hash(t1) in stored and t1 not in stored
    assert all(ok(h) == 401 and ok(auth.TOKEN_PREFIX + h) == 401 for h in stored)
    assert ok(auth.new_token()) == 401
    # logout ends one login; a password reset by an admin ends the others
    assert httpx.post(f"{hall.cfg.api_url}/api/v1/logout", headers={"Authorization": f"Bearer {t1}"}).status_code == 200
    assert ok(t1) == 401 and ok(t2) == 200
    assert hall.api.post("/api/v1/users/ann/password", json={"password": "another long secret"}).status_code == 200
    assert ok(t2) == 401 and login(hall, "ann", "another long secret").status_code == 200
    assert hall.api.post("/api/v1/users/ann/password", json={"password": "ann"}).status_code == 422
    assert hall.api.post("/api/v1/users", json={"name": "ann", "role": "viewer", "password": PASSWORD}
                         ).status_code == 409
    audit = hall.api.get("/api/v1/audit", params={"actor": "hall-admin"}).json()
    assert {"user.add", "user.password", "token.add"} <= {e["action"] for e in audit}
    assert all(PASSWORD not in str(e) and "another long secret" not in str(e) for e in audit)


def test_the_old_single_token_is_still_an_admins_for_this_release_with_a_warning(hall):
    old = {"Authorization": f"Bearer {hall.cfg.api_token}"}
    assert httpx.get(f"{hall.cfg.api_url}/api/v1/users", headers=old).json()
    me = httpx.get(f"{hall.cfg.api_url}/api/v1/me", headers=old).json()
    assert me["role"] == "admin" and me["token"] == "legacy"
    assert "api_token, which goes away in the next release" in (hall.home / "gateway.log").read_text()


def test_the_local_token_is_the_box_s_own(hall, tmp_path):
    token = (hall.home / "local.token").read_text().strip()
    assert oct((hall.home / "local.token").stat().st_mode & 0o777) == "0o600"
    assert call(hall, token, "GET", "/api/v1/me", None) == 200
    a = auth.Authenticator(hall.cfg, token)
    assert a.resolve(f"Bearer {token}".encode(), "127.0.0.1").name == "local"
    assert a.resolve(f"Bearer {token}".encode(), "10.20.0.7", "10.20.0.1") is None  # from another host
    assert a.resolve(f"Bearer {token}".encode(), "10.20.0.1", "10.20.0.1").name == "local"  # this host's LAN address


def test_guesses_sent_all_at_once_are_counted_before_any_is_checked(hall):
    """Last in this module: it spends this client address's allowance of failures."""
    assert hall.api.post("/api/v1/users", json={"name": "burst", "role": "viewer", "password": PASSWORD}
                         ).status_code == 201
    with ThreadPoolExecutor(20) as pool:
        codes = list(pool.map(lambda i: login(hall, "burst", f"guess number {i}").status_code, range(40)))
    assert codes.count(401) <= 5 and codes.count(429) >= 35
