"""Itemised ratings (protocol version 2) through a real gateway, beside version 1: stored
with their parts, counted per part, forwarded in the fields the provincial profile has
for them; a malformed part is refused and acked for nothing, even signed with the device's
own key; the parts statistics take only good selections."""

import json

import httpx
import pytest

from gateway import protocol
from simulator.harness import Hall, wait_until

from .protocol_device import ProtocolDevice


@pytest.fixture
def gw(tmp_path):
    h = Hall(tmp_path / "hall", devices=0, hall="parts", profile="provincial")
    h.start()
    try:
        yield h
    finally:
        h.stop()


def test_version_1_and_2_ratings_side_by_side(gw):
    creds = gw.api.post("/api/v1/devices", json={"dev": "pj-0101", "window": "W01", "model": "tablet"}).json()
    gw.business.sign_in("W01", "S1001", "张伟")
    dev = ProtocolDevice(creds, gw.cfg.broker_host, gw.cfg.broker_port)
    try:
        sent = []
        for level, reason, parts in (("satisfied", (), None),
                                     ("dissatisfied", ("slow",), {"staff": "satisfied", "efficiency": "dissatisfied"}),
                                     ("very_satisfied", (), {"staff": "very_satisfied", "item": "satisfied",
                                                             "channel": "very_satisfied"}),
                                     ("satisfied", (), {})):
            case = gw.business.complete_case("W01")["serial"]
            msg = dev.rating(level, reason, case=case, parts=parts)
            assert dev.send(msg)["status"] == "stored"
            sent.append(msg)
        # a part the protocol does not have: refused, not acked, counted
        bad = dev.rating("satisfied", parts={"mood": "satisfied"})
        dev.client.publish(dev.topic("rating"), json.dumps(bad).encode(), qos=1).wait_for_publish(5)
        wait_until(lambda: gw.rejection_counts().get("schema"), 10, what="the refusal")
        assert dev.acks.empty()
    finally:
        dev.close()

    rows = gw.stored_rows()
    assert rows["pj-0101:1"]["parts"] is None
    assert json.loads(rows["pj-0101:2"]["parts"]) == {"efficiency": "dissatisfied", "staff": "satisfied"}
    assert rows["pj-0101:4"]["parts"] is None  # version 2 with no part rated: nothing invented

    parts = {p["part"]: p for p in gw.api.get("/api/v1/stats/parts").json()}
    assert list(parts) == ["item", "staff", "channel", "efficiency"]  # in the protocol's order
    assert (parts["staff"]["ratings"], parts["staff"]["mean_score"], parts["staff"]["name"]) == (2, 9.0, "工作人员")
    assert (parts["efficiency"]["bad_reviews"], parts["efficiency"]["satisfaction_rate"]) == (1, 0.0)
    assert gw.api.get("/api/v1/stats/parts", params={"level": "dissatisfied"}).json()[0]["part"] == "staff"

    def at_platform():
        recs = httpx.get(f"{gw.cfg.platform_url}/sim/records", timeout=10).json()["records"]
        return {r["evaluateId"]: r for r in recs} if len(recs) == 4 else None
    recs = wait_until(at_platform, 30, what="the four ratings at the platform")
    assert [recs[f"pj-0101:{i}"]["staffSatisfaction"] for i in (1, 2, 3, 4)] == ["", "4", "5", ""]
    assert recs["pj-0101:3"]["taskSatisfaction"] == "4" and recs["pj-0101:3"]["channelSatisfaction"] == "5"
    assert recs["pj-0101:2"]["satisfaction"] == "2" and recs["pj-0101:2"]["evalDetail"] == "502"


def test_a_device_key_holder_cannot_slip_odd_parts_in_and_stops_nothing(gw):
    """Ratings signed with the device's own key, each with parts no tablet sends: refused as
    `schema`, never stored or acked; the honest rating after them is stored at once."""
    creds = gw.api.post("/api/v1/devices", json={"dev": "pj-0102", "window": "W02", "model": "tablet"}).json()
    dev = ProtocolDevice(creds, gw.cfg.broker_host, gw.cfg.broker_port)
    odd = [{f"p{i}": "satisfied" for i in range(300)},  # huge (under the broker's 8 KB, so it reaches the gateway)
           {"staff": {"level": "satisfied"}},  # nested
           {"staff": ["satisfied"]}, {"staff": 5}, {"staff": "excellent"}, {"staff": None},
           {**{p: "satisfied" for p in ("item", "staff", "channel", "commitment", "attitude", "materials",
                                         "efficiency", "trips", "mechanism", "integrity")}, "x" * 5000: "satisfied"},
           ["staff", "satisfied"], "staff:satisfied"]
    try:
        before = gw.rejection_counts().get("schema", 0)
        for parts in odd:
            msg = dev.rating("satisfied")
            msg.pop("sig")
            msg = {**msg, "v": 2, "parts": parts}
            msg["sig"] = protocol.sign(dev.key, "rating", msg)  # signed as the gateway would check it
            dev.client.publish(dev.topic("rating"), json.dumps(msg).encode(), qos=1).wait_for_publish(5)
        wait_until(lambda: gw.rejection_counts().get("schema", 0) >= before + len(odd), 20,
                   what="every odd rating refused")
        assert dev.acks.empty()
        assert dev.send(dev.rating("satisfied", parts={"staff": "satisfied"}))["status"] == "stored"
    finally:
        dev.close()
    assert [r for r in gw.stored_rows() if r.startswith("pj-0102:")] == [f"pj-0102:{dev.seq}"]
    assert gw.api.get("/api/v1/health").json()["broker_connected"]


def test_the_parts_statistics_take_only_good_selections(gw):
    api = gw.api
    for params in ({"level": "excellent"}, {"since": "yesterday"}, {"until": "2026-13-40"},
                   {"window": "x" * 1000}, {"level": ["satisfied", "x"]}):
        r = api.get("/api/v1/stats/parts", params=params)
        assert r.status_code == 422, (params, r.status_code, r.text)
    for window in ("W77", "W01' or '1'='1"):  # a name no window has, or SQL: bound as a value, it finds nothing
        r = api.get("/api/v1/stats/parts", params={"window": window, "since": "2020-01-01"})
        assert r.status_code == 200 and r.json() == [], (window, r.text)
