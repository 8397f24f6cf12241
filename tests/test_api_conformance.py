"""The admin API against its own OpenAPI document, and against a caller without the token:
schemathesis generates requests from the schema (a bounded number per endpoint) and
checks every answer against it: no server error, status codes and bodies as documented.
A real gateway, a real broker."""

import io
import socket
import subprocess
import sys

import httpx
import openpyxl
import pytest

from simulator.harness import Hall


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    h = Hall(tmp_path_factory.mktemp("api") / "hall", devices=1, hall="api", seed=5)
    h.start()
    try:
        yield h
    finally:
        h.stop()


def test_every_answer_conforms_to_the_openapi_document(gw):
    r = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "run", f"{gw.cfg.api_url}/openapi.json", "--checks", "all",
         "--max-examples", "25", "--seed", "1", "--header", f"Authorization: Bearer {gw.token}",
         "--no-color", "--suppress-health-check", "all",
         # logout would revoke the very token the run uses; the event stream never ends (it
         # has its own tests, tests/test_work_orders.py)
         # a firmware upload is a zip whose content no schema can say (tests/test_ota.py sends
         # good and tampered ones)
         "--exclude-path", "/api/v1/logout", "--exclude-path", "/api/v1/events",
         "--exclude-name", "POST /api/v1/firmware"],
        capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    assert "passed" in r.stdout
    assert httpx.get(f"{gw.cfg.api_url}/api/v1/health").json()["broker_connected"]  # still up


def test_no_token_no_body_read_and_no_echo(gw):
    url = gw.cfg.api_url
    auth = {"Authorization": f"Bearer {gw.token}"}

    def body_of(n):
        yield b'{"dev": "'
        for _ in range(n // 65536):
            yield b"x" * 65536
        yield b'", "window": "W1"}'

    # 50 MB without a token: refused before it is read, whatever its length header says
    r = httpx.post(f"{url}/api/v1/devices", content=body_of(50_000_000), timeout=30)
    assert r.status_code == 401
    # a length that promises 100 GB, and no body at all: answered at once
    host, port = gw.cfg.api_host, gw.cfg.api_port
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(b"POST /api/v1/devices HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 99999999999\r\n\r\n{")
        assert s.recv(200).startswith(b"HTTP/1.1 401")
    # with the token: too large is 413, by its length or as it streams in
    r = httpx.post(f"{url}/api/v1/devices", content=b"x" * 2_000_000, headers=auth, timeout=30)
    assert r.status_code == 413
    r = httpx.post(f"{url}/api/v1/devices", content=body_of(3_000_000), headers=auth, timeout=30)
    assert r.status_code == 413
    # a 422 names the field, never echoes the input
    secret = "<script>never-echoed-" + "y" * 500
    r = httpx.post(f"{url}/api/v1/devices", json={"dev": secret, "window": "W1"}, headers=auth)
    assert r.status_code == 422 and "never-echoed" not in r.text and r.json()["detail"][0]["loc"] == ["body", "dev"]
    r = httpx.get(f"{url}/api/v1/ratings", params={"offset": "1e20"}, headers=auth)
    assert r.status_code == 422
    r = httpx.get(f"{url}/api/v1/ratings", params={"offset": 10**12}, headers=auth)
    assert r.status_code == 422
    r = httpx.get(f"{url}/api/v1/ratings", params={"since": "not-a-date" + secret}, headers=auth)
    assert r.status_code == 422 and "never-echoed" not in r.text
    assert httpx.get(f"{url}/api/v1/health").status_code == 200


def test_csv_cells_cannot_run_as_formulas(gw):
    auth = {"Authorization": f"Bearer {gw.token}"}
    url = gw.cfg.api_url
    formula = '=HYPERLINK("//x.invalid","点我")'
    r = httpx.post(f"{url}/api/v1/windows/W01/sign-in", json={"staff_id": "S77", "staff_name": formula},
                   headers=auth)
    assert r.status_code == 200, r.text
    httpx.post(f"{url}/api/v1/cases", json={"serial": "F-1", "window": "W01", "item_code": "A1",
                                            "item_name": "+cmd|' /C calc'!A0"}, headers=auth).raise_for_status()
    link = gw.controller.link("pj-0001")
    assert link.wait(lambda l: l.session_case == "F-1", 10)
    p = gw.press("pj-0001", "satisfied")
    gw.wait_drained([p], timeout=30)
    text = httpx.get(f"{url}/api/v1/ratings.csv", headers=auth).text
    row = next(line for line in text.splitlines() if "F-1" in line)
    assert "'=HYPERLINK" in row and "'+cmd" in row
    assert ",=" not in row and ",+" not in row
    # in the workbook they are text cells, which no spreadsheet runs
    sheet = openpyxl.load_workbook(io.BytesIO(httpx.get(f"{url}/api/v1/ratings.xlsx", headers=auth).content)).active
    cells = next(r for r in sheet.iter_rows(min_row=2) if r[5].value == "F-1")
    assert {c.data_type for c in cells if isinstance(c.value, str)} == {"s"}
    assert any(c.value == "+cmd|' /C calc'!A0" for c in cells) and any(c.value == formula for c in cells)


def test_the_business_system_s_token_does_only_its_job(gw):
    """The token that sits in the business system's software signs staff in and out and
    reports cases; it reads no rating and touches no device."""
    url = gw.cfg.api_url
    biz = {"Authorization": f"Bearer {gw.business_token}"}
    assert httpx.post(f"{url}/api/v1/windows/W09/sign-in", json={"staff_id": "S9", "staff_name": "周"},
                      headers=biz).status_code == 200
    assert httpx.post(f"{url}/api/v1/cases", json={"serial": "BZ-1", "window": "W09", "item_code": "A",
                                                   "item_name": "事项"}, headers=biz).status_code == 201
    assert httpx.post(f"{url}/api/v1/windows/W09/sign-out", headers=biz).status_code == 200
    for method, path, body in (("GET", "/api/v1/ratings", None), ("GET", "/api/v1/ratings.csv", None),
                               ("GET", "/api/v1/devices", None), ("GET", "/api/v1/cases", None),
                               ("POST", "/api/v1/devices", {"dev": "pj-9", "window": "W09"}),
                               ("POST", "/api/v1/devices/pj-0001/rotate", {"grace_hours": 0}),
                               ("POST", "/api/v1/devices/pj-0001/retire", None),
                               ("POST", "/api/v1/forwarder/requeue", {})):
        r = httpx.request(method, f"{url}{path}", json=body, headers=biz)
        assert r.status_code == 403, (path, r.status_code)
    assert httpx.get(f"{url}/api/v1/devices/pj-0001", headers={"Authorization": f"Bearer {gw.token}"}
                     ).json()["state"] != "retired"
