"""A hostile hall: an insider holding one device's password and signing key, or the
business system's token, attacks a hall of real-firmware devices through the real
broker and the real API. Each test checks that the attack failed, and that every rating
citizens confirmed on the devices meanwhile was stored once with its own tags."""

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from gateway import protocol, tls
from gateway.data import schema
from simulator.harness import Hall, start_gateway, wait_until
from simulator.virtual_device import VirtualDevice

from .protocol_device import login

DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def hall(tmp_path_factory):
    h = Hall(tmp_path_factory.mktemp("hostile") / "hall", devices=3, hall="hx", seed=3)
    h.start()
    try:
        yield h
    finally:
        h.stop()


class Attacker:
    """A real MQTT client logged in with a stolen device password (or any login)."""

    def __init__(self, hall, user: str, password: str, client_id: str = ""):
        self.hall = hall
        self.c, host, port = login(hall.cfg, user, password, client_id or f"x-{user}")
        self.c.connect(host, port)
        self.c.loop_start()

    def publish(self, dev: str, leaf: str, payload, qos: int = 1) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
        self.c.publish(protocol.topic(self.hall.cfg.hall, dev, leaf), data, qos=qos).wait_for_publish(5)

    def close(self) -> None:
        self.c.disconnect()  # first: the network loop then ends at once instead of at its next wake
        self.c.loop_stop()


@contextlib.contextmanager
def unplugged(hall, dev: str):
    """The real device off the network while its stolen login is used: two holders of one
    login only push each other off the broker (see the takeover test)."""
    link = hall.controller.link(dev)
    link.send({"wifi": False})
    assert link.wait(lambda l: not l.link_up, 10)
    try:
        yield
    finally:
        link.send({"wifi": True})
        assert link.wait(lambda l: l.link_up, 20)


def stolen(hall, dev: str) -> tuple[dict, bytes]:
    creds = hall.credentials[dev]
    return creds, bytes.fromhex(creds["key"])


def forged(key: bytes, dev: str, seq: int, **change) -> dict:
    msg = {"dev": dev, "seq": seq, "level": "very_satisfied", "reason": [], "case": "",
           "ts": time.time_ns() // 1_000_000, "tsync": True, "boot": 1, "up": 1000, "fw": "0.1.0", **change}
    return protocol.signed(key, "rating", msg)


def rows(hall, where: str = "1", args=()) -> list[dict]:
    return hall._read(lambda db: list(db.query(f"select * from ratings where {where}", list(args))))


def rejections(hall) -> dict:
    return hall.rejection_counts()


def assert_stored_once(hall, pressed: list[dict]) -> None:
    """Each confirmed press is stored exactly once, as pressed, with its window, staff and
    case, whatever ID the gateway had to give it."""
    for p in pressed:
        seq = int(p["id"].split(":")[1])

        def mine():
            return [r for r in rows(hall, "dev = ? and seq = ? and case_no = ?", (p["dev"], seq, p["case_no"]))
                    if r["level"] == p["level"]]
        wait_until(mine, 20, what=f"{p['id']} stored")
        time.sleep(0.2)  # a second copy, were there one, would be in by now
        mine = mine()
        assert len(mine) == 1, (p, mine)
        r = mine[0]
        assert (r["window"], r["staff_id"]) == (p["window"], p["staff_id"]), (p, r)
        if not r["held"]:
            assert r["tag_source"] == "case", r


def test_no_login_takes_another_s_client_id(hall):
    """Item 1: a device's login, connecting again and again under the gateway's client ID
    or another device's (each time let in, as itself), pushes neither off the broker; on
    the gateway's listener it is not even a login."""
    creds, _ = stolen(hall, "pj-0003")
    link = hall.controller.link("pj-0001")
    drops = link.seen["link"]
    log = hall.home / "gateway.log"
    lost_before = log.read_text().count("disconnected from the broker")
    for _ in range(3):
        for cid in (hall.cfg.gateway_user, "pj-0001", f"pingjia-gateway-{hall.cfg.hall}"):
            x = Attacker(hall, creds["user"], creds["password"], client_id=cid)
            wait_until(lambda: x.c.is_connected(), 5, what=f"the attacker connected as {cid}")  # it got in
            time.sleep(0.1)
            x.close()
            assert hall.api.get("/api/v1/health").json()["broker_connected"]
    assert link.seen["link"] == drops and link.link_up
    assert log.read_text().count("disconnected from the broker") == lost_before
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="pj-0003")
    c.username_pw_set(creds["user"], creds["password"])
    rc = []
    c.on_connect = lambda *a: rc.append(a[3])
    c.connect("127.0.0.1", hall.cfg.local_port)
    c.loop_start()
    wait_until(lambda: rc, 5, what="the CONNACK")
    c.loop_stop()
    assert rc[0].is_failure
    assert_stored_once(hall, [hall.rate("pj-0001")])


def test_ratings_signed_ahead_of_the_counter_never_cost_a_real_rating(hall):
    """Item 2: with the key, an attacker takes the sequence numbers the device will use
    next. The device's real ratings are held (kept, flagged), never dropped, and the
    device numbers on past the taken ones."""
    dev = "pj-0001"
    creds, key = stolen(hall, dev)
    link = hall.controller.link(dev)
    first = hall.rate(dev)
    seq0 = int(first["id"].split(":")[1])
    taken = range(seq0 + 1, seq0 + 301)
    with unplugged(hall, dev):
        x = Attacker(hall, creds["user"], creds["password"])
        sent = [x.c.publish(protocol.topic(hall.cfg.hall, dev, "rating"), protocol.encode(forged(key, dev, seq)),
                            qos=0 if seq % 2 else 1) for seq in taken]
        for info in sent:
            info.wait_for_publish(10)
        x.close()
        wait_until(lambda: len(rows(hall, "dev = ? and seq > ?", (dev, seq0))) == len(taken), 30,
                   what="the forgeries")
    forgeries = {r["id"]: r["sig"] for r in rows(hall, "dev = ? and seq > ?", (dev, seq0))}

    pressed = [first] + [hall.rate(dev) for _ in range(5)]
    assert wait_until(lambda: {int(p["id"].split(":")[1]) for p in pressed} <= link.acked, 60,
                      what="every rating acked")
    assert_stored_once(hall, pressed)
    held = [r for r in rows(hall, "dev = ? and held = 'seq_taken'", (dev,))]
    assert 1 <= len(held) <= 3 and all(r["forward_state"] == "held" for r in held)
    assert all(r["id"] == f"{dev}:{r['seq']}:{r['sig'][:16]}" for r in held)
    last = rows(hall, "dev = ? and seq = ?", (dev, int(pressed[-1]["id"].split(":")[1])))
    assert [r["held"] for r in last] == [None]  # the device numbered past the taken seqs
    # the forgeries were not overwritten, and the held ratings are not forwarded
    assert {r["id"]: r["sig"] for r in rows(hall, "id in (%s)" % ",".join("?" * len(forgeries)),
                                           list(forgeries))} == forgeries
    hall.wait_drained([p for p in pressed if p["id"] not in {r["id"] for r in held}], timeout=30)
    assert not {r["id"] for r in held} & set(hall.platform_records())
    assert link.seen["held"] >= 1
    # held ratings stay out of the lists and statistics until an admin releases one
    listed = {r["id"] for r in hall.api.get("/api/v1/ratings", params={"dev": dev, "limit": 1000}).json()}
    assert not listed & {r["id"] for r in held}
    with_held = hall.api.get("/api/v1/ratings", params={"dev": dev, "limit": 1000, "held": True}).json()
    assert {r["id"] for r in held} <= {r["id"] for r in with_held}
    assert hall.api.post(f"/api/v1/ratings/{held[0]['id']}/release").status_code == 200
    assert hall.api.post(f"/api/v1/ratings/{held[0]['id']}/release").status_code == 409
    assert hall.api.post("/api/v1/ratings/pj-0001:0/release").status_code == 404
    hall.wait_drained([{"id": held[0]["id"]}], timeout=30)
    assert held[0]["id"] in hall.platform_records()


def test_a_device_whose_counter_went_back_keeps_every_rating(hall):
    """Item 2 without an attacker: flash restored from an old copy, the counter restarts."""
    dev = "pj-0003"
    pressed = [hall.rate(dev) for _ in range(2)]
    link = hall.controller.link(dev)
    assert wait_until(lambda: {int(p["id"].split(":")[1]) for p in pressed} <= link.acked, 30, what="acks")
    flash = hall.devices[dev].flash
    hall.devices[dev].power_cut()
    for name in ("seq", "seq.tmp"):
        (flash / name).unlink(missing_ok=True)
    for f in (flash / "outbox.d").iterdir():
        f.unlink()
    hall.controller.forget(dev)
    hall.devices[dev].start()
    link = hall.controller.link(dev, 20)
    assert link.wait(lambda l: l.link_up, 20)
    again = [hall.rate(dev) for _ in range(3)]
    assert wait_until(lambda: {int(p["id"].split(":")[1]) for p in again} <= link.acked, 60, what="acks")
    assert_stored_once(hall, pressed + again)
    assert any(r["held"] == "seq_taken" for r in rows(hall, "dev = ?", (dev,)))


def test_a_case_of_another_window_cannot_be_rated(hall):
    """Item 3: a signed rating naming a case completed at W02 is held at W01, and the
    citizen at W02 still rates it."""
    creds, key = stolen(hall, "pj-0001")
    case = hall.new_case("pj-0002")
    bad = forged(key, "pj-0001", 2_000_000, level="very_dissatisfied", reason=["attitude"], case=case)
    rid = f"pj-0001:{bad['seq']}"
    with unplugged(hall, "pj-0001"):
        x = Attacker(hall, creds["user"], creds["password"])
        x.publish("pj-0001", "rating", bad)
        x.close()
        wait_until(lambda: rows(hall, "id = ?", (rid,)), 10, what="the foreign-case rating")
    r = rows(hall, "id = ?", (rid,))[0]
    assert (r["held"], r["window"], r["tag_source"], r["forward_state"]) == \
        ("foreign_case", "W01", "foreign_case", "held")
    c = hall.api.get("/api/v1/cases", params={"window": "W02"}).json()
    assert next(x for x in c if x["serial"] == case)["rating_id"] is None
    real = hall.press("pj-0002", "satisfied")
    assert real["case_no"] == case
    wait_until(lambda: rows(hall, "id = ?", (real["id"],)), 10, what="the real rating")
    assert_stored_once(hall, [real])
    c = hall.api.get("/api/v1/cases", params={"window": "W02"}).json()
    assert next(x for x in c if x["serial"] == case)["rating_id"] == real["id"]


def test_a_synced_clock_in_the_past_is_flagged(hall):
    """Item 4: tsync true with a time in 1970, 30 days back, or at odds with the device's
    own uptime since its sync, is not taken as the time of the press."""
    creds, key = stolen(hall, "pj-0002")
    with unplugged(hall, "pj-0002"):
        x = Attacker(hall, creds["user"], creds["password"])
        now_ms = time.time_ns() // 1_000_000
        x.publish("pj-0002", "time/req", {"v": 1, "dev": "pj-0002", "id": 1, "ts": now_ms, "boot": 77, "up": 500_000})
        wait_until(lambda: hall.api.get("/api/v1/devices/pj-0002").json()["sync_boot"] == 77, 10, what="the sync")
        cases = {
            3_000_001: dict(ts=0),
            3_000_002: dict(ts=now_ms - 30 * DAY_MS),
            3_000_003: dict(ts=now_ms - 3_600_000, boot=77, up=510_000),  # uptime says 10 s after the sync
            3_000_004: dict(ts=now_ms + 10_000, boot=77, up=510_000),  # agrees with its uptime: believed
        }
        for seq, change in cases.items():
            x.publish("pj-0002", "rating", forged(key, "pj-0002", seq, **change))
        x.close()
        wait_until(lambda: len(rows(hall, "dev = 'pj-0002' and seq >= 3000001")) == 4, 10, what="the ratings")
    got = {r["seq"]: r for r in rows(hall, "dev = 'pj-0002' and seq >= 3000001")}
    for seq in (3_000_001, 3_000_002, 3_000_003):
        assert got[seq]["clock"] == "suspect", got[seq]
        assert abs(got[seq]["rated_at"] - time.time()) < 60
    assert got[3_000_004]["clock"] == "device"


def test_malformed_ratings_and_heartbeats_are_refused_and_break_no_view(hall):
    """Items 5 and 6: "v": true, a reason given twice, NaN, a 2,000-character or nested
    health field, a lone surrogate, JSON nested 3,000 deep; the device list and the CLI
    still answer, for every device."""
    creds, key = stolen(hall, "pj-0002")
    before = rejections(hall)
    with unplugged(hall, "pj-0002"):
        x = Attacker(hall, creds["user"], creds["password"])
        v_true = forged(key, "pj-0002", 4_000_001)
        v_true["v"] = True
        x.publish("pj-0002", "rating", v_true)
        x.publish("pj-0002", "rating", forged(key, "pj-0002", 4_000_002, level="dissatisfied",
                                              reason=["slow", "slow"]))
        health = {"v": 1, "dev": "pj-0002", "fw": "0.1.0", "model": "five-button", "up": 1, "boot": 1}
        x.publish("pj-0002", "health", json.dumps(health).replace('"up": 1', '"up": NaN').encode(), qos=0)
        x.publish("pj-0002", "health", {**health, "fw": "f" * 2000}, qos=0)
        x.publish("pj-0002", "health", {**health, "rssi": {"a": [1, 2]}}, qos=0)
        x.publish("pj-0002", "health", {**health, "outbox": 1.5e308}, qos=0)
        x.publish("pj-0002", "health", {**health, "v": True}, qos=0)
        x.publish("pj-0002", "status", {"v": 1, "state": ["online"] * 500})
        x.publish("pj-0002", "time/req",
                  {"v": 1, "dev": "pj-0002", "id": {"x": "\n" * 100}, "ts": 1, "boot": 1, "up": 1},
                  qos=0)
        x.publish("pj-0002", "health", b'{"v":1,"dev":"pj-0002","fw":"\\ud800"}', qos=0)  # no UTF-8 for it
        x.publish("pj-0002", "health", b"[" * 3000 + b"]" * 3000, qos=0)  # nested past the parser's depth
        x.publish("pj-0002", "health", {**health, "junk": "j" * 2000, "up": 2}, qos=0)  # unknown: dropped
        x.close()
        want = {"unsupported_version": 2, "schema": 7, "not_json": 2}

        def grew():
            now = rejections(hall)
            return all(now.get(k, 0) - before.get(k, 0) >= n for k, n in want.items())
        wait_until(grew, 10, what="the rejections")
        now = rejections(hall)
        assert {k: now.get(k, 0) - before.get(k, 0) for k in want} == want
        assert not rows(hall, "seq in (4000001, 4000002)")
        wait_until(lambda: (hall.api.get("/api/v1/devices/pj-0002").json()["health"] or {}).get("up") == 2, 10,
                   what="the good heartbeat")
        listed = hall.api.get("/api/v1/devices")
        assert listed.status_code == 200 and len(listed.json()) == 3
        h = next(d for d in listed.json() if d["dev"] == "pj-0002")["health"]
        assert "junk" not in h and h["fw"] == "0.1.0"
        out = subprocess.run([sys.executable, "-m", "gateway", "gateway", "device", "list", "--home",
                              str(hall.home)], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0 and out.stdout.count("\n") == 3, out.stderr
    # the real devices' ratings still pass
    assert_stored_once(hall, [hall.rate("pj-0002")])


def test_bad_names_are_refused_and_bad_stored_data_cannot_stop_the_gateway(hall):
    """Item 7: a name with a line break answers 422 and is not saved; a bad name already
    in the database (an older release, a hand edit) leaves the gateway able to start and
    serve every other window."""
    api = hall.api
    for name in ("张\n伟", "张\r伟", "a\x00b", "x\u2028y", "\x85"):
        r = api.post("/api/v1/windows/W01/sign-in", json={"staff_id": "S9", "staff_name": name})
        assert r.status_code == 422, (name, r.text)
        r = api.post("/api/v1/cases", json={"serial": "BAD-1", "window": "W01", "item_code": "A1", "item_name": name})
        assert r.status_code == 422, (name, r.text)
    r = api.post("/api/v1/cases", json={"serial": "BAD-2", "window": "W01", "item_code": "A 1\n", "item_name": "x"})
    assert r.status_code == 422
    assert all(s["staff_id"] != "S9" for s in api.get("/api/v1/sessions").json())
    assert not any(c["serial"].startswith("BAD") for c in api.get("/api/v1/cases").json())

    def poison(db):
        db.execute("update sessions set staff_name = ? where window = 'W03' and ended_at is null", ["坏\n名"])
        db.conn.commit()
    hall._read(poison)
    hall.gateway.send_signal(signal.SIGTERM)
    hall.gateway.wait(10)
    hall.gateway = start_gateway(hall.cfg)
    assert api.get("/api/v1/health").json()["broker_connected"]
    assert api.get("/api/v1/windows").status_code == 200
    assert_stored_once(hall, [hall.rate("pj-0001"), hall.rate("pj-0002")])
    hall._read(lambda db: (db.execute("update sessions set staff_name = '赵敏' where window = 'W03' "
                                      "and ended_at is null"), db.conn.commit()))
    assert schema.SCHEMA_VERSION >= 2


def _uid(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


def test_secrets_stay_with_their_owners_and_a_flood_cannot_fill_the_log(hall):
    """Item 10: the database (every device's key) and its WAL, the CA key, each device's
    config are their owner's alone; the broker does not run as root; the platform's
    secret is not on a command line; rejections cannot grow the log without bound."""
    home = hall.home
    for f in (home / "gateway.db", home / "gateway.db-wal", home / "gateway.json", home / "tls" / "ca.key",
              hall.devices["pj-0001"].flash / "config.json"):
        assert f.stat().st_mode & 0o077 == 0, f
    assert (home / "tls").stat().st_mode & 0o077 == 0
    for name in ("passwd", "passwd.local", "broker.key", "mosquitto.conf"):
        assert (home / "broker" / name).stat().st_mode & 0o077 == 0, name
    assert (home / "broker").stat().st_mode & 0o077 == 0
    if os.geteuid() == 0:
        assert _uid(hall.broker.proc.pid) != 0
    cmdline = Path(f"/proc/{hall.platform.pid}/cmdline").read_bytes()
    assert hall.cfg.platform_app_secret.encode() not in cmdline

    log = home / "gateway.log"
    before = log.read_text().count("rejected a message")
    creds, _ = stolen(hall, "pj-0003")
    with unplugged(hall, "pj-0003"):
        x = Attacker(hall, creds["user"], creds["password"])
        for i in range(3000):
            x.c.publish(protocol.topic(hall.cfg.hall, "pj-0003", "rating"), b"garbage %d" % i, qos=0)
        x.publish("pj-0003", "rating", b"last")
        x.close()

        def counted():  # refused one by one, or dropped unread once the gateway's queue was full
            c = hall.api.get("/api/v1/gateway").json()["ingest_since_start"]
            return c.get("rejected:not_json", 0) + c.get("dropped_qos0", 0) >= 3001
        wait_until(counted, 30, what="the flood to be counted")
    assert log.read_text().count("rejected a message") - before <= 2 * 30  # a minute boundary may fall inside
    assert_stored_once(hall, [hall.rate("pj-0003")])


def test_a_device_login_reads_and_writes_only_its_own_topics(hall):
    """With pj-0003's password: publishing in other devices' names, as the gateway, with a
    last will on another device's status, or subscribing to everything reaches nothing
    and nobody; a retained message left on its own rating topic is cleared when the
    gateway next sees it."""
    creds, key = stolen(hall, "pj-0003")
    seen = []
    before = rejections(hall)
    with unplugged(hall, "pj-0003"):
        c, host, port = login(hall.cfg, creds["user"], creds["password"], "pj-0003")
        c.will_set(protocol.topic(hall.cfg.hall, "pj-0001", "status"), b'{"v":1,"state":"offline"}', 1, True)
        c.on_message = lambda cl, u, m: seen.append(m.topic)
        c.connect(host, port)
        c.loop_start()
        c.subscribe([("#", 0), ("$SYS/#", 0), (f"pingjia/{hall.cfg.hall}/+/session", 1),
                     (f"pingjia/{hall.cfg.hall}/pj-0001/#", 1)])
        time.sleep(0.3)
        for dev, leaf in (("pj-0002", "rating"), ("gateway", "status"), ("pj-0001", "session"), ("pj-0001", "ack")):
            msg = forged(bytes.fromhex(hall.credentials["pj-0002"]["key"]), "pj-0002", 5_000_001)
            c.publish(protocol.topic(hall.cfg.hall, dev, leaf), json.dumps(msg), qos=1).wait_for_publish(5)
        retained = forged(key, "pj-0003", 5_000_002)
        c.publish(protocol.topic(hall.cfg.hall, "pj-0003", "rating"), json.dumps(retained), qos=1,
                  retain=True).wait_for_publish(5)
        p = hall.rate("pj-0001")  # a session and an ack go to pj-0001 meanwhile
        wait_until(lambda: rows(hall, "id = ?", (p["id"],)), 20, what="the rating")
        c.loop_stop()
        c.socket().close()  # no DISCONNECT: the broker would publish the will, were it allowed
        time.sleep(0.5)
    assert not [t for t in seen if "pj-0003" not in t], seen
    assert not rows(hall, "seq = 5000001")
    assert hall.api.get("/api/v1/devices/pj-0001").json()["online"]
    assert hall.controller.link("pj-0001").link_up
    assert rows(hall, "id = 'pj-0003:5000002'")  # stored once, as any signed rating
    # a retained copy reaches the gateway again each time it subscribes, and is cleared
    # then (MQTT 3.1.1 marks a message retained only when a subscription brings it)
    hall.gateway.send_signal(signal.SIGTERM)
    hall.gateway.wait(10)
    hall.gateway = start_gateway(hall.cfg)
    got = []
    g, host, port = login(hall.cfg, hall.cfg.gateway_user, hall.cfg.gateway_password, "t-retained")
    g.on_message = lambda cl, u, m: got.append(m.payload)
    g.connect(host, port)
    g.loop_start()
    time.sleep(0.5)  # the gateway has had its retained delivery and cleared it
    g.subscribe(protocol.topic(hall.cfg.hall, "pj-0003", "rating"), 1)
    time.sleep(0.5)
    g.loop_stop()
    g.disconnect()
    assert got == []
    now = rejections(hall)
    # nothing it sent elsewhere reached the gateway; its retained copy was refused once seen
    assert {k: now.get(k, 0) - before.get(k, 0) for k in now if now.get(k, 0) != before.get(k, 0)} == {"retained": 1}


def test_a_device_talks_only_to_a_broker_its_hall_ca_vouches_for(hall, tmp_path):
    """Item 11: a broker with a certificate from another CA (an access point posing as
    the hall's) gets no connection from the real firmware, so no password and no rating;
    the same device with its own hall's CA comes online and rates."""
    creds = hall.api.post("/api/v1/devices", json={"dev": "pj-0009", "window": "W09"}).json()
    assert base64.b64decode(creds["ca"]).startswith(b"\x30")  # DER
    tls.ensure_ca(tmp_path / "other", "impostor")
    wrong = {**creds, "ca": tls.ca_der_b64(tmp_path / "other"), "ctl": hall.controller.address}
    d = VirtualDevice(tmp_path / "pj-0009", wrong)
    d.start()
    try:
        link = hall.controller.link("pj-0009", 20)
        assert not link.wait(lambda l: l.link_up, 6)
        assert not hall.api.get("/api/v1/devices/pj-0009").json()["online"]
    finally:
        d.stop()
    hall.controller.forget("pj-0009")
    d = VirtualDevice(tmp_path / "pj-0009", {**creds, "ctl": hall.controller.address})
    d.start()
    try:
        link = hall.controller.link("pj-0009", 20)
        assert link.wait(lambda l: l.link_up, 20)
    finally:
        d.stop()


def test_a_retained_time_request_cannot_rewrite_a_device_s_clock(hall):
    """Left retained with a device's password, a time request with an impossible uptime
    would reach the gateway again at each start and drag the device's next ratings back
    a thousand years and out of their staff's session. A retained copy is refused,
    counted and cleared, never handled."""
    dev = "pj-0001"
    creds, _ = stolen(hall, dev)
    boot = hall.api.get(f"/api/v1/devices/{dev}").json()["sync_boot"]
    before = rejections(hall).get("retained", 0)
    with unplugged(hall, dev):
        x = Attacker(hall, creds["user"], creds["password"])
        x.c.publish(protocol.topic(hall.cfg.hall, dev, "time/req"), json.dumps(
            {"v": 1, "dev": dev, "id": 1, "ts": time.time_ns() // 1_000_000, "boot": boot, "up": 2**45 - 1}),
            qos=1, retain=True).wait_for_publish(5)
        x.close()
    hall.gateway.send_signal(signal.SIGTERM)
    hall.gateway.wait(10)
    hall.gateway = start_gateway(hall.cfg)
    wait_until(lambda: rejections(hall).get("retained", 0) > before, 10, what="the retained copy refused")
    assert hall.api.get(f"/api/v1/devices/{dev}").json()["sync_boot"] == boot
    hall.hand_over("W01", ("S2001", "周杰"))
    p = hall.rate(dev)
    assert_stored_once(hall, [p])
    row = rows(hall, "id = ?", (p["id"],))[0]
    assert row["clock"] == "device" and abs(row["rated_at"] - time.time()) < 60 and row["staff_id"] == "S2001"
