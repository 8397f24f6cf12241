"""Updates over the air through the real parts: builds uploaded to a real gateway, rolled
out in stages to real-firmware devices over TLS, each file fetched over MQTT and checked;
a broken build rolled back on its canary and the rollout halted; ratings pressed before,
during and after, every one stored once. And what a device's key holder may send."""

import collections
import io
import json
import zipfile

import paho.mqtt.client as mqtt
import pytest
from playwright.sync_api import expect

from gateway import protocol
from gateway.cli import zip_build
from simulator import builds
from simulator.harness import Hall, wait_until
from tests.test_console import PASSWORD, open_console, shot


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("builds")
    return {kind: (root / kind, builds.make(root / kind, f"0.2.0-{kind.replace('_', '-')}", kind))
            for kind in builds.KINDS}


@pytest.fixture(scope="module")
def hall(tmp_path_factory):
    h = Hall(tmp_path_factory.mktemp("ota") / "hall", devices=10, hall="ota", seed=9,
             device_config={"trial_s": 20})
    h.start()
    try:
        yield h
    finally:
        h.stop()


def upload(hall, folder):
    """The build kept at the gateway (uploaded now, or by an earlier test)."""
    r = hall.api.post("/api/v1/firmware", content=zip_build(folder), headers={"Content-Type": "application/zip"})
    assert r.status_code in (201, 409), r.text
    return json.loads((folder / "manifest.json").read_text())["content_hash"]


def rollout(hall, h, **kw):
    r = hall.api.post("/api/v1/rollouts", json={"hash": h, **kw})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def wait_rollout(hall, rid, states, timeout=240):
    return wait_until(lambda: (r := hall.api.get(f"/api/v1/rollouts/{rid}").json())["state"] in states and r,
                      timeout, interval=0.5, what=f"rollout {rid} to be {states}")


def fwh(hall, dev):
    return (hall.api.get(f"/api/v1/devices/{dev}").json()["health"] or {}).get("fwh")


def test_a_good_build_reaches_every_device_in_stages_and_no_rating_is_lost(hall, made):
    pressed = []
    for dev in hall.devices:
        hall.new_case(dev)
        pressed.append(hall.press(dev, "satisfied"))
    good = upload(hall, made["good"][0])
    rid = rollout(hall, good, canary=1, shares=[1.0])
    r = hall.api.get(f"/api/v1/rollouts/{rid}").json()
    assert r["stages"] == [1, 10] and [d["stage"] for d in r["devices"]] == [0] + [1] * 9
    # a rating while the canary updates
    other = r["devices"][1]["dev"]
    hall.new_case(other)
    pressed.append(hall.press(other, "very_satisfied"))
    done = wait_rollout(hall, rid, ("done", "halted"))
    assert done["state"] == "done", done
    assert all(d["state"] == "healthy" for d in done["devices"])
    for dev in hall.devices:
        assert fwh(hall, dev) == good
        assert hall.api.get(f"/api/v1/devices/{dev}").json()["health"]["fw"] == "0.2.0-good"
        hall.new_case(dev)
        pressed.append(hall.press(dev, "basically_satisfied"))
    hall.wait_drained(pressed)
    stored = hall.stored_rows()
    assert all(p["id"] in stored for p in pressed) and len({p["id"] for p in pressed}) == len(pressed)


@pytest.mark.parametrize("kind, why", [("import_error", "crash"), ("no_connect", "no_commit")])
def test_a_broken_build_is_rolled_back_on_the_canary_and_the_rollout_halts(hall, made, kind, why):
    before = {dev: fwh(hall, dev) for dev in hall.devices}
    h = upload(hall, made[kind][0])
    rid = rollout(hall, h, canary=1, shares=[1.0])
    r = wait_rollout(hall, rid, ("halted", "done"), timeout=180)
    assert r["state"] == "halted" and "rolled back" in r["why"], r
    canary = next(d for d in r["devices"] if d["stage"] == 0)
    assert canary["state"] == "rolled_back" and why in canary["detail"]
    assert all(d["state"] == "waiting" for d in r["devices"] if d["stage"] == 1)  # never sent
    wait_until(lambda: fwh(hall, canary["dev"]) == before[canary["dev"]], 60, what="the old build back")
    hall.new_case(canary["dev"])
    hall.wait_drained([hall.press(canary["dev"], "satisfied")])
    assert hall.api.post(f"/api/v1/rollouts/{rid}/cancel").json()["state"] == "cancelled"


def test_a_tampered_build_is_refused(hall, made):
    folder = made["good"][0]
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as z:
        for p in sorted(folder.iterdir()):
            z.writestr(p.name, p.read_bytes() + (b"\0" if p.name == "flow.mpy" else b""))
    r = hall.api.post("/api/v1/firmware", content=data.getvalue(), headers={"Content-Type": "application/zip"})
    assert r.status_code == 400 and "flow.mpy does not match" in r.json()["detail"]
    assert hall.api.post("/api/v1/firmware", content=b"PK\x03\x04 not a zip").status_code == 400
    assert hall.api.post("/api/v1/rollouts", json={"hash": "0" * 64}).status_code == 404


def test_a_device_key_gets_only_its_own_update(hall, made):
    """A device's login asks for builds no rollout is sending it, floods, and names files
    outside the build: refused and counted, never served."""
    dev = "pj-0001"
    creds = hall.credentials[dev]
    got = []
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=dev)
    c.username_pw_set(dev, creds["password"])
    import ssl
    c.tls_set_context(ssl.create_default_context(cafile=str(hall.cfg.tls_dir / "ca.crt")))
    c.on_message = lambda cl, u, m: got.append(json.loads(m.payload))
    hall.devices[dev].power_cut()  # the real device is away: its login is the attacker's
    hall.controller.forget(dev)
    c.connect(hall.cfg.broker_host, hall.cfg.broker_port)
    c.loop_start()
    try:
        c.subscribe(protocol.topic(hall.cfg.hall, dev, "fw"), 0)
        before = hall.rejection_counts().get("fw_request", 0)
        h = next(b["hash"] for b in hall.api.get("/api/v1/firmware").json())
        for _ in range(120):
            c.publish(protocol.topic(hall.cfg.hall, dev, "fw/req"), json.dumps(
                {"v": 1, "dev": dev, "hash": h, "file": "manifest.json", "off": 0}), 0)
        wait_until(lambda: hall.rejection_counts().get("fw_request", 0) - before >= 100, 20,
                   what="the requests refused")
        assert got == []  # no rollout sends it this build: nothing served
    finally:
        c.loop_stop()
        c.disconnect()
        hall.devices[dev].start()
        hall.controller.link(dev, timeout=30).wait(lambda l: l.link_up, 30)


def test_power_cuts_at_random_moments_of_updates_leave_a_whole_version_and_every_rating(hall, made, tmp_path):
    """The short version of `pingjia sim ota`'s power cuts (200 there)."""
    import random

    from simulator.commands.ota import Run

    run = Run(hall, random.Random(3))
    builds.make(tmp_path / "again", "0.2.1", "good", "gbk")  # another font: a long fetch to cut into
    other = upload(hall, tmp_path / "again")
    good = upload(hall, made["good"][0])
    out = {"cuts": 0, "incomplete": 0, "unbootable": 0, "phases": collections.Counter()}
    # each phase of an update twice: mid-fetch, switched, on trial, committed
    run.cut_loop("pj-0002", (good, other), 8, out, ("fetching", "switched", "on_trial", "committed"))
    for dev in hall.devices:
        run.rate(dev)
    hall.wait_drained(run.pressed)
    s = hall.summary(run.pressed)
    assert out["cuts"] == 8 and out["incomplete"] == 0 and out["unbootable"] == 0, out
    assert out["phases"] == {"fetching": 2, "switched": 2, "on_trial": 2, "committed": 2}, out
    # (the hall's other tests pressed too: only these presses are counted here)
    assert run.pressed and s["lost"] == 0 and s["forwarded"] == s["pressed"] == len(run.pressed), s


def test_the_console_shows_the_rollouts_and_a_technician_steers_them(hall, made, browser):
    r = hall.api.post("/api/v1/users", json={"name": "zhao.min", "role": "technician", "password": PASSWORD})
    assert r.status_code == 201, r.text
    good = upload(hall, made["good"][0])
    rid = rollout(hall, good, devices=["pj-0003"])
    hall.api.post(f"/api/v1/rollouts/{rid}/halt")
    page = open_console(hall, browser, "zhao.min")
    page.click("nav a[data-page=devices]")
    row = page.locator(f"table.rollouts tr[data-rollout='{rid}']")
    expect(row).to_contain_text("已暂停")
    expect(page.locator("table.rollouts tbody tr")).to_have_count(len(hall.api.get("/api/v1/rollouts").json()))
    page.on("dialog", lambda d: d.accept())
    row.locator("button", has_text="取消").click()
    expect(row).to_contain_text("已取消")
    shot(page, "rollouts")
    assert page.errors == []
    assert hall.api.get(f"/api/v1/rollouts/{rid}").json()["state"] == "cancelled"


def test_an_old_update_command_replayed_is_refused(hall, made):
    """Someone who recorded a signed update command (on a hall running without TLS, say)
    sends it again later, to bring a device back to the build it named: refused."""
    import time

    dev = "pj-0004"
    key = bytes.fromhex(hall.credentials[dev]["key"])
    replies = []
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"replayer-{time.monotonic_ns()}")
    c.username_pw_set(hall.cfg.gateway_user, hall.cfg.gateway_password)  # as if it were the gateway
    c.on_message = lambda cl, u, m: replies.append(json.loads(m.payload))
    c.connect("127.0.0.1", hall.cfg.local_port)
    c.loop_start()
    try:
        c.subscribe(protocol.topic(hall.cfg.hall, dev, "cmd/reply"), 1)
        time.sleep(0.5)
        running = fwh(hall, dev)
        old = upload(hall, made["import_error"][0])  # any build but the one it runs
        for cid, h, at in (("u-1-0", running, int(time.time())), ("u-1-1", old, int(time.time()) - 86400 * 400)):
            cmd = protocol.signed(key, "update", {"dev": dev, "id": cid, "cmd": "update", "hash": h,
                                                  "version": "x", "at": at})
            c.publish(protocol.topic(hall.cfg.hall, dev, "cmd"), protocol.encode(cmd), 1)
            wait_until(lambda: any(r.get("id") == cid for r in replies), 20, what="the device's answer")
        assert next(r for r in replies if r.get("id") == "u-1-0")["detail"] == "running"  # a command now
        answer = next(r for r in replies if r.get("id") == "u-1-1")
        assert answer["ok"] is False and "older" in answer["detail"], answer
        assert fwh(hall, dev) != old
    finally:
        c.loop_stop()
        c.disconnect()
