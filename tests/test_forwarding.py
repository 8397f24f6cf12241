"""Forwarding through real parts when the provincial platform misbehaves: the platform
stand-in injects faults over real HTTP; the gateway must deliver every rating once."""

import json
import time

import httpx
import pytest

from gateway.province import PROFILE_DIR
from simulator.harness import Hall, wait_until

from .protocol_device import ProtocolDevice


def start(tmp_path, profile="national", faults=(), settings=None, secret=None):
    h = Hall(tmp_path / "hall", devices=0, hall="fw", profile=profile)
    h.platform_faults = list(faults)
    if secret is not None:
        h.cfg.platform_app_secret = secret
    if settings is not None:
        h.cfg.platform_settings = settings
    h.start()
    r = h.api.post("/api/v1/devices", json={"dev": "pj-0001", "window": "W01"})
    h.device = ProtocolDevice(r.json(), h.cfg.broker_host, h.cfg.broker_port)
    h.business.sign_in("W01", "S1001", "张伟")
    return h


def rate(h, n):
    """n ratings, each for its own completed case; returns what the summary needs."""
    out = []
    for _ in range(n):
        case = h.business.complete_case("W01")["serial"]
        msg = h.device.rating(level="satisfied", case=case)
        assert h.device.send(msg)["status"] == "stored"
        out.append({"id": f"pj-0001:{msg['seq']}", "case_no": case, "window": "W01", "staff_id": "S1001",
                    "level": "satisfied"})
    return out


def sim(h, path="/sim/stats", **kw):
    return httpx.request("POST" if kw else "GET", f"{h.cfg.platform_url}{path}", timeout=10, **kw).json()


@pytest.fixture
def stop_after():
    halls = []
    yield halls.append
    for h in halls:
        h.device.close()
        h.stop()


EXACT = {"duplicates": 0, "lost": 0, "mistagged": 0}


def test_errors_lost_replies_and_duplicate_successes_still_deliver_each_rating_once(tmp_path, stop_after):
    h = start(tmp_path, faults=["--error-rate", "0.3", "--lost-reply-rate", "0.2", "--drop-rate", "0.2",
                                "--dup-reply-rate", "0.5", "--seed", "3"])
    stop_after(h)
    pressed = rate(h, 60)
    h.wait_drained(pressed, timeout=90)
    s = h.summary(pressed)
    assert {k: s[k] for k in EXACT} == EXACT and s["forwarded"] == 60
    stats = sim(h)
    assert stats["stored"] == 60 and stats["http_503"] > 0 and stats["lost_replies_injected"] > 0
    assert stats["drops_injected"] > 0
    assert stats["duplicates_received"] > 0  # the lost replies made the gateway send again: harmless


def test_hanging_requests_time_out_and_slow_answers_still_count(tmp_path, stop_after):
    h = start(tmp_path, faults=["--timeout-rate", "0.5", "--latency-ms", "200", "--seed", "5"])
    stop_after(h)
    h.kill_gateway()
    h.cfg.platform_timeout_s = 1.0
    h.cfg.save()
    h.start_gateway()
    pressed = rate(h, 20)
    h.wait_drained(pressed, timeout=60)
    s = h.summary(pressed)
    assert s["forwarded"] == 20 and s["duplicates"] == 0
    stats = sim(h)
    assert stats.get("timeouts_injected", 0) >= 1, stats


def test_an_outage_queues_visibly_and_drains_when_the_platform_returns(tmp_path, stop_after):
    h = start(tmp_path, faults=["--outage-s", "4"])
    stop_after(h)
    pressed = rate(h, 20)
    time.sleep(1)
    fw = h.api.get("/api/v1/forwarder").json()
    assert fw["backlog"] == 20 and fw["oldest_age_s"] >= 1 and "503" in (fw["last_error"] or "")
    assert fw["consecutive_failures"] >= 3  # backing off: a probe a pause, not a request a millisecond
    assert sim(h)["http_503"] <= 10
    h.wait_drained(pressed, timeout=90)
    assert h.summary(pressed)["forwarded"] == 20
    assert h.api.get("/api/v1/forwarder").json()["backlog"] == 0


def test_a_rate_limit_is_honoured(tmp_path, stop_after):
    # the platform takes 20 records/s (after a burst of one batch, 100); the profile would
    # send 50/s, so the platform answers 429 and the forwarder must wait as told
    h = start(tmp_path, faults=["--rate", "20"], secret="-a-secret-that-looks-like-an-option")
    stop_after(h)
    h.kill_gateway()  # let a backlog build up first
    pressed = rate_offline(h, 200)
    t0 = time.monotonic()
    h.start_gateway()
    h.wait_drained(pressed, timeout=90)
    seconds = time.monotonic() - t0
    assert h.summary(pressed)["forwarded"] == 200
    refused = sim(h).get("http_429", 0)
    assert refused >= 1  # the limit was reached ...
    assert refused <= seconds + 2  # ... and each 429 was waited out (Retry-After >= 1 s), not hammered


def rate_offline(h, n):
    """Ratings the device made while the gateway was away: sent once it is back."""
    msgs = [h.device.rating(level="very_satisfied") for _ in range(n)]
    for m in msgs:
        h.device.client.publish(h.device.topic("rating"), json.dumps(m), qos=1)
    return [{"id": f"pj-0001:{m['seq']}", "case_no": "", "window": "W01", "staff_id": "S1001",
             "level": "very_satisfied"} for m in msgs]


def test_wrong_credentials_pause_and_keep_the_ratings(tmp_path, stop_after):
    h = start(tmp_path)
    stop_after(h)
    h.kill_gateway()
    h.cfg.platform_app_secret = "not-the-secret"
    h.cfg.save()
    h.start_gateway()
    rate(h, 3)
    time.sleep(1.5)
    fw = h.api.get("/api/v1/forwarder").json()
    assert fw["backlog"] == 3 and "credentials" in fw["last_error"] and fw["paused_for_s"] > 0
    assert sim(h)["stored"] == 0 and sim(h)["http_401"] >= 1


def test_refused_records_become_dead_letters_and_are_requeued_after_correction(tmp_path, stop_after):
    # the provincial profile needs a case number and a numeric area code
    h = start(tmp_path, profile="provincial", settings={"area_code": "44-03", "dept_code": "D1"})
    stop_after(h)
    pressed = rate(h, 3)
    no_case = h.device.rating(level="satisfied", case="")
    h.device.send(no_case)
    wait_until(lambda: len(h.api.get("/api/v1/forwarder/dead").json()) >= 4, 20, what="four dead letters")
    dead = {d["id"]: d for d in h.api.get("/api/v1/forwarder/dead").json()}
    assert set(dead) == {p["id"] for p in pressed} | {f"pj-0001:{no_case['seq']}"}
    assert "areaCode" in dead[pressed[0]["id"]]["last_error"]
    assert "projectNo" in dead[f"pj-0001:{no_case['seq']}"]["last_error"]
    assert h.api.get("/api/v1/forwarder").json()["dead_letters"] == 4

    # the admin corrects the hall's area code and re-queues the three that can now go
    h.kill_gateway()
    h.cfg.platform_settings = {"area_code": "440304", "dept_code": "D1"}
    h.cfg.save()
    h.start_gateway()
    assert h.api.post("/api/v1/forwarder/requeue", json={"ids": [p["id"] for p in pressed]}).json() == {"requeued": 3}
    h.wait_drained(pressed, timeout=30)
    assert h.summary(pressed)["forwarded"] == 3
    assert [d["id"] for d in h.api.get("/api/v1/forwarder/dead").json()] == [f"pj-0001:{no_case['seq']}"]


def test_a_batch_refused_whole_is_sent_again_one_by_one(tmp_path, stop_after):
    # this platform takes at most 5 records a request, though the profile says 100
    strict = json.loads((PROFILE_DIR / "national.json").read_text()) | {"batch_size": 5}
    (tmp_path / "strict.json").write_text(json.dumps(strict, ensure_ascii=False))
    h = start(tmp_path, faults=["--profile", str(tmp_path / "strict.json")])
    stop_after(h)
    h.kill_gateway()
    pressed = rate_offline(h, 12)
    h.start_gateway()
    h.wait_drained(pressed, timeout=60)
    assert h.summary(pressed)["forwarded"] == 12
    assert sim(h)["http_413"] >= 1 and h.api.get("/api/v1/forwarder").json()["dead_letters"] == 0
