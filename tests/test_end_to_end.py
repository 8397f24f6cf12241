"""One rating's whole path through real parts: MicroPython devices, Mosquitto, the
gateway process, real HTTP to the platform stand-in."""

import json
import random
import threading
import time

import httpx

from gateway import protocol
from simulator.harness import wait_until

from .protocol_device import login


def _rate_in_threads(hall, devs, per_device):
    pressed, errors = [], []

    def work(dev):
        try:
            for _ in range(per_device):
                pressed.append(hall.rate(dev))
        except Exception as e:
            errors.append(f"{dev}: {e!r}")

    threads = [threading.Thread(target=work, args=(d,)) for d in devs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    return pressed


def test_every_pressed_rating_reaches_the_platform_once_with_its_tags(hall):
    pressed = _rate_in_threads(hall, list(hall.devices), 10)
    # one of each kind of bad review, with its reason, through the same path
    hall.new_case("pj-0001")
    bad = hall.press("pj-0001", "very_dissatisfied", "materials")
    pressed.append(bad)
    hall.wait_drained(pressed, timeout=60)
    assert hall.summary(pressed) == {"pressed": 31, "stored": 31, "forwarded": 31, "duplicates": 0,
                                     "lost": 0, "mistagged": 0, "itemised": 0}
    rec = hall.platform_records()[bad["id"]]  # the national profile's record
    assert rec["文字评价"] == "材料要求繁琐" and rec["满意度代码"] == 5 and rec["满意度"] == "非常不满意"
    assert rec["办件编号"] == bad["case_no"] and rec["行政区划"] == "440304"


def test_a_second_press_for_the_same_case_sends_nothing_new(hall):
    hall.new_case("pj-0002")
    first = hall.press("pj-0002", "satisfied")
    link = hall.controller.link("pj-0002")
    n = len(link.confirmed)
    assert link.tap(1, lambda l: l.seen["already_rated"] == 1, 5)
    assert len(link.confirmed) == n
    hall.wait_drained([first], timeout=30)
    # after a power cut the device learns from the retained session that the case is rated
    hall.power_cycle("pj-0002")
    link = hall.controller.link("pj-0002")
    assert link.wait(lambda l: l.session_case == first["case_no"], 10)
    assert link.tap(2, lambda l: l.seen["already_rated"] == 1, 5)
    assert link.confirmed == []
    assert hall.summary([first]) == {"pressed": 1, "stored": 1, "forwarded": 1, "duplicates": 0,
                                     "lost": 0, "mistagged": 0, "itemised": 0}


def test_kill_9_of_the_gateway_while_devices_rate_loses_and_duplicates_nothing(hall):
    rng = random.Random(7)
    raters = ["pj-0001", "pj-0002"]
    offline_dev = "pj-0003"  # rated only while the gateway is dead
    pressed, errors, stop = [], [], threading.Event()

    def work(dev):
        while not stop.is_set():
            try:
                pressed.append(hall.rate(dev))
            except Exception as e:
                errors.append(f"{dev}: {e!r}")
                return

    threads = [threading.Thread(target=work, args=(d,)) for d in raters]
    for t in threads:
        t.start()
    offline = []
    for _ in range(4):
        time.sleep(rng.uniform(0.2, 1.0))
        hall.new_case(offline_dev)
        hall.kill_gateway()
        offline.append(hall.press(offline_dev, "basically_satisfied"))
        time.sleep(rng.uniform(0.1, 0.5))
        hall.start_gateway()
    wait_until(lambda: len(pressed) > 40 or errors, 90, what="40 ratings")
    stop.set()
    for t in threads:
        t.join(60)
    assert not errors
    pressed += offline
    assert hall.gateway_kills == 4 and len(pressed) > 40
    hall.wait_drained(pressed, timeout=90)
    s = hall.summary(pressed)
    assert s == {"pressed": len(pressed), "stored": len(pressed), "forwarded": len(pressed),
                 "duplicates": 0, "lost": 0, "mistagged": 0, "itemised": 0}


def _publisher(hall, user, password):
    c, host, port = login(hall.cfg, user, password, f"attacker-{user}")
    c.connect(host, port)
    c.loop_start()
    return c


def test_bad_input_is_rejected_counted_and_good_ratings_still_pass(hall):
    dev = "pj-0001"
    creds = hall.credentials[dev]
    key = bytes.fromhex(creds["key"])
    api = httpx.Client(base_url=hall.cfg.api_url, headers={"Authorization": f"Bearer {hall.token}"})

    hall.new_case(dev)
    good = hall.press(dev, "satisfied")
    hall.wait_drained([good], timeout=30)
    seq = int(good["id"].split(":")[1])
    rows = api.get("/api/v1/ratings", params={"window": "W01"}).json()
    stored = next(r for r in rows if r["id"] == good["id"])

    def rating(**change):
        msg = {"dev": dev, "seq": 900, "level": "very_satisfied", "reason": [], "case": "", "ts": int(time.time()),
               "tsync": True, "boot": 1, "up": 1, "fw": "0.1.0", **change}
        return protocol.signed(key, "rating", msg)

    as_device = _publisher(hall, dev, creds["password"])
    as_gateway = _publisher(hall, hall.cfg.gateway_user, hall.cfg.gateway_password)
    t = protocol.topic(hall.cfg.hall, dev, "rating")
    forged = rating(seq=901)
    forged["level"] = "very_dissatisfied"
    forged["reason"] = ["attitude"]
    replay = rating(seq=seq, level="very_satisfied", case=stored["case_no"])
    original = {k: stored[k] for k in ("seq", "level", "boot", "up", "fw")}
    original.update(dev=dev, reason=[], case=stored["case_no"], ts=stored["device_ts"], tsync=bool(stored["tsync"]),
                    v=1, sig=stored["sig"])
    sends = [
        (as_device, t, b"\xff\xfe not json"),
        (as_device, t, json.dumps({"v": 1, "dev": dev}).encode()),
        (as_device, t, json.dumps(rating(seq="902")).encode()),
        (as_device, t, json.dumps(forged).encode()),
        (as_device, t, json.dumps(replay).encode()),  # a used seq with other content: held
        (as_device, t, json.dumps(original).encode()),  # the very same rating again: harmless
        (as_device, t, json.dumps(rating(v=3)).encode()),  # a version this gateway does not speak
        (as_gateway, protocol.topic(hall.cfg.hall, "pj-9999", "rating"),
         json.dumps(rating(dev="pj-9999")).encode()),
        (as_gateway, protocol.topic(hall.cfg.hall, "pj-0002", "rating"), json.dumps(rating()).encode()),
        (as_gateway, f"pingjia/otherhall/{dev}/rating", json.dumps(rating()).encode()),
    ]
    for client, topic, payload in sends:
        client.publish(topic, payload, qos=1).wait_for_publish(5)

    want = {"not_json": 1, "schema": 2, "bad_signature": 1, "unsupported_version": 1,
            "unknown_device": 1, "topic_mismatch": 1}
    wait_until(lambda: api.get("/api/v1/rejections").json()["counts"] == want, 15, what="the rejections")
    recent = api.get("/api/v1/rejections").json()["recent"]
    assert {r["reason"] for r in recent} == set(want) and all(r["detail"] for r in recent)
    state = api.get("/api/v1/gateway").json()
    assert state["ingest_since_start"]["duplicate"] == 1
    # nothing forged or repeated was stored; the signed rating with a used seq is held
    # under an ID of its own, and the original is untouched
    assert state["ratings"] == 2 and state["ingest_since_start"]["held:seq_taken"] == 1
    held = hall.stored_rows()[f"{good['id']}:{replay['sig'][:16]}"]
    assert (held["held"], held["forward_state"], held["level"]) == ("seq_taken", "held", "very_satisfied")
    assert hall.stored_rows()[good["id"]]["sig"] == stored["sig"]
    assert hall.gateway.poll() is None
    for c in (as_device, as_gateway):
        c.loop_stop()
        c.disconnect()

    # the gateway keeps working: good ratings from real devices still go all the way
    after = [hall.rate(d) for d in hall.devices]
    hall.wait_drained(after + [good], timeout=30)
    assert hall.summary(after + [good])["forwarded"] == 4
    assert httpx.get(f"{hall.cfg.api_url}/api/v1/rejections").status_code == 401
