"""Bad reviews acted on, through the real parts: a bad press on a real-firmware device
opens a work order and raises an alert on the event stream and the hall's webhook; the
steps are taken by people with their own accounts, each recorded; the rating itself never
changes; the rectification reaches the platform stand-in."""

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from simulator.event_stream import EventStream
from simulator.harness import Hall, free_port, wait_until

from .protocol_device import ProtocolDevice

PASSWORD = "correct horse battery"


class Webhook:
    """The hall's own system: a real HTTP server that keeps what it is sent."""

    def __init__(self):
        got = self.got = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                got.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def account(h, name: str, role: str, windows=()) -> httpx.Client:
    """A person's account made by the admin, logged in: a client with their token."""
    r = h.api.post("/api/v1/users", json={"name": name, "role": role, "windows": list(windows), "password": PASSWORD})
    assert r.status_code == 201, r.text
    r = httpx.post(f"{h.cfg.api_url}/api/v1/login", json={"user": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return httpx.Client(base_url=h.cfg.api_url, headers={"Authorization": f"Bearer {r.json()['token']}"}, timeout=10)


@pytest.fixture(scope="module")
def hook():
    w = Webhook()
    yield w
    w.close()


@pytest.fixture(scope="module")
def hall(tmp_path_factory, hook):
    h = Hall(tmp_path_factory.mktemp("wo") / "hall", devices=2, hall="wo", seed=4)
    h.cfg.alert_webhook_url = f"http://127.0.0.1:{hook.port}/pingjia"
    h.start()
    try:
        yield h
    finally:
        h.stop()


def test_a_bad_press_opens_a_work_order_and_an_alert_on_the_stream_and_the_webhook(hall, hook):
    stream = EventStream(hall.cfg.api_url, hall.token)
    assert stream.status == 200
    try:
        hall.new_case("pj-0001")
        good = hall.press("pj-0001", "very_satisfied")
        hall.new_case("pj-0001")
        bad = hall.press("pj-0001", "very_dissatisfied", "attitude")
        confirmed = time.time()  # the citizen sees the thanks screen: the rating is committed
        alert = wait_until(lambda: stream.of("bad_review"), 1.0, what="the alert, within a second")[0]
    finally:
        stream.close()
    assert alert["rating_id"] == bad["id"] and alert["window"] == "W01" and alert["level"] == "very_dissatisfied"
    assert alert["reasons"] == ["attitude"] and alert["case_no"] == bad["case_no"]
    assert alert["staff_id"] == hall.staff["W01"][0]
    assert alert["_arrived"] - confirmed < 1.0
    orders = hall.api.get("/api/v1/work-orders").json()
    assert [o["rating_id"] for o in orders] == [bad["id"]]  # the good rating opened none
    assert good["id"] not in {o["rating_id"] for o in orders}
    o = orders[0]
    assert o["state"] == "open" and o["staff_id"] == alert["staff_id"] and o["case_no"] == bad["case_no"]
    assert set(o["deadlines"]) == {"contact", "fix"} and o["card"] in (None, "warning")
    # the webhook: the same alert, signed with the hall's secret
    headers, body = wait_until(lambda: hook.got and hook.got[0], 10, what="the webhook")
    sent = json.loads(body)
    assert sent["rating_id"] == bad["id"] and headers["X-Pingjia-Event"] == "bad_review"
    want = "sha256=" + hmac.new(hall.cfg.alert_webhook_secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Pingjia-Signature"], want)
    # an alert names the case and the staff, and nothing else of anyone
    assert set(sent) == {"id", "type", "at", "work_order", "rating_id", "window", "staff_id", "staff_name",
                         "case_no", "item_name", "level", "reasons"}


def test_the_loop_is_closed_by_accounts_with_their_roles_and_the_rating_never_changes(hall):
    sup1 = account(hall, "sup-w02", "supervisor", ["W02"])
    other = account(hall, "sup-w09", "supervisor", ["W09"])
    viewer = account(hall, "viewer1", "viewer")
    hall.new_case("pj-0002")
    bad = hall.press("pj-0002", "dissatisfied", "slow")
    oid = wait_until(lambda: [o["id"] for o in hall.api.get("/api/v1/work-orders", params={"window": "W02"}).json()],
                     5, what="the order")[0]
    before = hall.api.get("/api/v1/ratings", params={"window": "W02"}).json()
    step = f"/api/v1/work-orders/{oid}/steps"
    assert viewer.post(step, json={"step": "accept"}).status_code == 403
    assert other.post(step, json={"step": "accept"}).status_code == 403  # not their window
    assert sup1.post(step, json={"step": "contact"}).status_code == 409  # accept comes first
    assert sup1.post(step, json={"step": "accept"}).json()["state"] == "accepted"
    assert sup1.post(step, json={"step": "contact", "note": "电话联系了办事群众"}).json()["state"] == "contacted"
    # a complex case moves the fix deadline: the admin's decision, not the supervisor's
    assert sup1.post(step, json={"step": "rectify", "complex": True}).status_code == 403
    assert hall.api.post(step, json={"step": "rectify", "complex": True}).json()["complex"] == 1
    assert sup1.post(step, json={"step": "close"}).status_code == 422  # a close needs its rectification note
    closed = sup1.post(step, json={"step": "close", "note": "窗口增派人手，已整改\n回访满意"}).json()
    assert closed["state"] == "closed" and closed["deadlines"]["contact"]["met"] is True and closed["card"] is None
    assert sup1.post(step, json={"step": "accept"}).status_code == 409
    one = hall.api.get(f"/api/v1/work-orders/{oid}").json()
    assert [(s["step"], s["actor"]) for s in one["steps"]] == [
        ("opened", "system"), ("accept", "sup-w02"), ("contact", "sup-w02"), ("rectify", "hall-admin"),
        ("close", "sup-w02")]
    assert all(s["at"] for s in one["steps"]) and one["steps"][-1]["note"].endswith("回访满意")

    # a second bad review, found malicious after checking: invalid, never deleted
    hall.new_case("pj-0002")
    bad2 = hall.press("pj-0002", "very_dissatisfied", "trips")
    oid2 = wait_until(lambda: [o["id"] for o in hall.api.get("/api/v1/work-orders", params={"state": "open"}).json()
                               if o["rating_id"] == bad2["id"]], 5, what="the second order")[0]
    assert sup1.post(f"/api/v1/work-orders/{oid2}/steps", json={"step": "invalid", "note": "同一人反复差评"}
                     ).status_code == 422  # which kind of invalid
    assert sup1.post(f"/api/v1/work-orders/{oid2}/steps", json={"step": "invalid", "kind": "mistaken",
                                                                 "note": "\n "}).status_code == 422  # a blank why
    r = sup1.post(f"/api/v1/work-orders/{oid2}/steps", json={"step": "invalid", "kind": "malicious",
                                                               "note": "同一人反复差评，经核实为恶意评价"})
    assert r.status_code == 200 and r.json()["invalid_kind"] == "malicious"
    after = hall.api.get("/api/v1/ratings", params={"window": "W02"}).json()
    by_id = {x["id"]: x for x in after}
    for x in before:  # the ratings are as they were, and the invalid one is still there
        assert {k: v for k, v in by_id[x["id"]].items() if k not in ("forward_state", "forwarded_at", "attempts",
                                                                      "next_attempt_at", "last_error")} == \
               {k: v for k, v in x.items() if k not in ("forward_state", "forwarded_at", "attempts",
                                                         "next_attempt_at", "last_error")}
    assert by_id[bad2["id"]]["level"] == "very_dissatisfied"
    s = hall.api.get("/api/v1/work-orders/summary").json()
    assert s["valid"] == s["work_orders"] - s["invalid"] and s["invalid"] == 1 and s["closed"] == 1
    assert s["rectification_rate"] == round(1 / s["valid"], 4) and s["rules"]["name"] == "huanggang"
    # every step in the audit log, with who took it
    log = hall.api.get("/api/v1/audit", params={"actor": "sup-w02"}).json()
    assert [e["action"] for e in reversed(log)] == ["work_order.accept", "work_order.contact", "work_order.close",
                                                     "work_order.invalid"]
    assert any(e["action"] == "work_order.rectify" and e["detail"]["complex"] is True
               for e in hall.api.get("/api/v1/audit", params={"actor": "hall-admin"}).json())
    # the platform stand-in takes the feedback, once it has the ratings
    fb = wait_until(lambda: (r := httpx.get(f"{hall.cfg.platform_url}/sim/feedback").json())["count"] == 2 and r,
                    30, interval=0.3, what="both feedback records")
    got = {x["评价编号"]: x for x in fb["records"]}
    assert got[bad["id"]]["整改结果"] == "已整改" and got[bad["id"]]["整改说明"].startswith("窗口增派人手")
    assert got[bad2["id"]]["整改结果"] == "恶意评价"
    order = hall.api.get(f"/api/v1/work-orders/{oid}").json()
    assert order["feedback_state"] == "sent"


def test_three_valid_bad_reviews_in_a_week_put_the_staff_member_on_the_watch_list(hall):
    dev = ProtocolDevice(hall.api.post("/api/v1/devices", json={"dev": "pj-0301", "window": "W03"}).json(),
                         hall.cfg.broker_host, hall.cfg.broker_port)
    try:
        hall.business.sign_in("W03", "S303", "赵敏")
        for i in range(3):
            assert hall.api.post("/api/v1/cases", json={"serial": f"W3-{i}", "window": "W03", "item_code": "A",
                                                        "item_name": "事项"}).status_code == 201
            assert dev.send(dev.rating(level="dissatisfied", reason=["slow"], case=f"W3-{i}"))["status"] == "stored"
            if i == 1:
                watch = hall.api.get("/api/v1/staff/watch").json()
                assert "S303" not in {w["staff_id"] for w in watch}  # two are not yet three
    finally:
        dev.close()
    watch = {w["staff_id"]: w for w in hall.api.get("/api/v1/staff/watch").json()}
    assert watch["S303"]["week"] == 3 and watch["S303"]["staff_name"] == "赵敏"
    # one found invalid no longer counts
    oid = [o["id"] for o in hall.api.get("/api/v1/work-orders", params={"staff_id": "S303"}).json()][0]
    assert hall.api.post(f"/api/v1/work-orders/{oid}/steps", json={"step": "invalid", "kind": "mistaken",
                                                                    "note": "群众误按"}).status_code == 200
    assert "S303" not in {w["staff_id"] for w in hall.api.get("/api/v1/staff/watch").json()}


def test_a_reconnecting_console_gets_what_it_missed_and_nothing_twice(hall):
    first = EventStream(hall.cfg.api_url, hall.token)
    try:
        hall.new_case("pj-0001")
        seen = hall.press("pj-0001", "dissatisfied", "materials")
        a = wait_until(lambda: [e for e in first.of("bad_review") if e["rating_id"] == seen["id"]], 5)[0]
    finally:
        first.close()
    hall.new_case("pj-0001")
    missed = hall.press("pj-0001", "very_dissatisfied", "slow")  # while no console was open
    wait_until(lambda: any(o["rating_id"] == missed["id"] for o in hall.api.get("/api/v1/work-orders").json()), 5)
    again = EventStream(hall.cfg.api_url, hall.token, last_event_id=a["id"])
    try:
        got = wait_until(lambda: [e for e in again.of("bad_review") if e["rating_id"] == missed["id"]], 5,
                         what="the missed alert")
    finally:
        again.close()
    assert len(got) == 1 and all(e["id"] > a["id"] for e in again.events)
    rated = [e for e in again.of("rating") if e["rating_id"] == missed["id"]]  # the press itself, for the hall page
    assert len(rated) == 1 and rated[0]["window"] == "W01" and rated[0]["level"] == "very_dissatisfied"
    tech = account(hall, "tech1", "technician")
    assert tech.get("/api/v1/events").status_code == 403  # technicians see devices, not reviews


def test_a_revoked_login_stops_getting_alerts_and_one_token_cannot_take_every_stream(hall):
    viewer = account(hall, "viewer2", "viewer")
    token = viewer.headers["Authorization"].split()[1]
    stream = EventStream(hall.cfg.api_url, token)
    extra = [EventStream(hall.cfg.api_url, token) for _ in range(4)]
    try:
        assert [s.status for s in extra] == [200] * 4
        assert viewer.get("/api/v1/events").status_code == 503  # a sixth stream for one token
        assert hall.api.post("/api/v1/users/viewer2/disable").status_code == 200
        hall.new_case("pj-0002")
        bad = hall.press("pj-0002", "dissatisfied", "commitment")
        wait_until(lambda: any(o["rating_id"] == bad["id"] for o in hall.api.get("/api/v1/work-orders").json()), 5)
        assert stream.ended.wait(10)  # cut at the alert, or at the next check, whichever first
        assert not any(e.get("rating_id") == bad["id"] for e in stream.events)
    finally:
        for s in (stream, *extra):
            s.close()
