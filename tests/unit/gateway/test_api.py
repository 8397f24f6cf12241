"""The API in-process (no broker, no gateway running): bad calls get a clear 4xx, the
tokens are checked, the library's errors map to their codes and a bug is a logged 500."""

import pytest
from fastapi.testclient import TestClient

from gateway.api import create_app
from gateway.auth import account_token
from gateway.data import open_db
from simulator.harness import local_config

TOKENS: dict[str, str] = {}


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    c = local_config(tmp_path_factory.mktemp("api") / "hall", "unit")
    c.save()
    db = open_db(c.db_path)
    TOKENS.update(admin=account_token(db, "admin1", "admin", "unit"),
                  business=account_token(db, "biz", "business", "unit"))
    db.conn.close()
    return c


@pytest.fixture(scope="module")
def api(cfg):
    with TestClient(create_app(cfg), headers={"Authorization": f"Bearer {TOKENS['admin']}"},
                    raise_server_exceptions=False) as client:
        yield client


BAD_CALLS = [
    ("POST", "/api/v1/devices", {"dev": "a/b", "window": "W1"}, 422),
    ("POST", "/api/v1/devices", {"dev": "ok", "window": "W1", "model": "toaster"}, 422),
    ("POST", "/api/v1/devices", {"window": "W1"}, 422),
    ("POST", "/api/v1/devices", "not json", 422),
    ("POST", "/api/v1/devices/nope/retire", None, 404),
    ("POST", "/api/v1/devices/nope/window", {"window": "W2"}, 404),
    ("POST", "/api/v1/devices/nope/rotate", {"grace_hours": -1}, 422),
    ("POST", "/api/v1/windows/W1/sign-in", {"staff_id": "S 1", "staff_name": "x"}, 422),
    ("POST", "/api/v1/windows/W9/sign-out", None, 404),
    ("POST", "/api/v1/cases", {"serial": "X1", "window": "W1", "item_code": "a", "item_name": "b"}, 409),
    ("POST", "/api/v1/cases", {"serial": "X1", "window": "W1"}, 422),
    ("POST", "/api/v1/cases", {"serial": "X" * 51, "window": "W1", "item_code": "a", "item_name": "b"}, 422),
    ("GET", "/api/v1/ratings?limit=0", None, 422),
    ("GET", "/api/v1/ratings?limit=abc", None, 422),
    ("GET", "/api/v1/ratings?level=great", None, 422),
    ("GET", "/api/v1/ratings?since=yesterday", None, 422),
    ("GET", "/api/v1/ratings?since=1700000000", None, 422),  # a number is no date
    ("GET", "/api/v1/ratings?since=2026-11-23T09:00:00", None, 422),  # a time needs its offset
    ("GET", "/api/v1/ratings.csv?until=2026-13-01", None, 422),
    ("GET", "/api/v1/ratings?offset=1e20", None, 422),
    ("GET", "/api/v1/stats?by=moon", None, 422),
    ("GET", "/api/v1/cases?rated=maybe", None, 422),
    ("POST", "/api/v1/ratings/nope:1/release", None, 404),
    ("POST", "/api/v1/ratings/<img src=x onerror=alert(1)>/release", None, 422),
    ("GET", "/api/v1/nothing-here", None, 404),
    ("DELETE", "/api/v1/devices", None, 405),
]


@pytest.mark.parametrize("method,path,body,status", BAD_CALLS, ids=[f"{m} {p}" for m, p, _, _ in BAD_CALLS])
def test_bad_api_calls_get_a_clear_4xx(api, method, path, body, status):
    kw = {"content": body} if isinstance(body, str) else {"json": body} if body is not None else {}
    r = api.request(method, path, **kw)
    assert r.status_code == status, r.text
    assert r.json()["detail"] and "<img" not in r.text  # never the input echoed


def test_good_calls_answer_and_the_days_filter(api):
    assert api.post("/api/v1/windows/W1/sign-in", json={"staff_id": "S1", "staff_name": "王芳"}).status_code == 200
    r = api.post("/api/v1/cases", json={"serial": "C-1", "window": "W1", "item_code": "A", "item_name": "事项"})
    assert r.status_code == 201 and r.json()["staff_id"] == "S1"
    assert api.post("/api/v1/cases", json={"serial": "C-1", "window": "W1", "item_code": "A",
                                           "item_name": "事项"}).status_code == 409
    assert api.get("/api/v1/ratings", params={"since": "2026-11-23", "until": "2026-11-23T18:00:00+08:00"}
                   ).json() == []
    assert api.get("/api/v1/cases/rated-share").json()["cases"] == 1
    assert api.get("/api/v1/windows").json()[0]["staff_name"] == "王芳"


def test_every_endpoint_but_health_needs_a_token_and_the_business_one_only_its_own(api, cfg):
    anon = TestClient(api.app)
    assert anon.get("/api/v1/health").status_code == 200
    for path in ("/api/v1/devices", "/api/v1/ratings", "/api/v1/ratings.csv", "/api/v1/stats", "/api/v1/cases",
                 "/api/v1/sessions", "/api/v1/windows", "/api/v1/rejections", "/api/v1/forwarder", "/api/v1/gateway"):
        assert anon.get(path).status_code == 401, path
        assert anon.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401, path
        assert anon.get(path, headers={"Authorization": f"Bearer {TOKENS['business']}"}).status_code == 403, path
    assert anon.post("/api/v1/devices", json={"dev": "x", "window": "W1"}).status_code == 401


def test_a_bug_is_a_500_not_a_404(api, cfg, monkeypatch):
    """A KeyError (a LookupError) or a ValueError inside the library is a bug, not a
    missing thing or a conflict: it must not be dressed as 404 or 409."""
    from gateway.data import hall

    def broken(*a, **kw):
        raise KeyError("window")
    monkeypatch.setattr(hall, "windows", broken)
    assert api.get("/api/v1/windows").status_code == 500
    monkeypatch.setattr(hall, "windows", lambda *a: (_ for _ in ()).throw(ValueError("bad")))
    assert api.get("/api/v1/windows").status_code == 500
