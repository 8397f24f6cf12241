"""The gateway as a hall's admin and business system use it: registry, sessions and
tagging, statistics, bad API input. A real gateway process, a real Mosquitto."""

import csv
import io
import json
import time

import openpyxl
import pytest

from simulator.harness import Hall, wait_until

from .protocol_device import ProtocolDevice, login


@pytest.fixture
def gw(tmp_path):
    h = Hall(tmp_path / "hall", devices=0, hall="gw")
    h.cfg.heartbeat_s = 1  # so that "stale" (3 missed heartbeats) comes within a test
    h.start()
    try:
        yield h
    finally:
        h.stop()


def add(gw, dev, window):
    r = gw.api.post("/api/v1/devices", json={"dev": dev, "window": window})
    assert r.status_code == 201, r.text
    return r.json()


def connect(gw, creds):
    return ProtocolDevice(creds, gw.cfg.broker_host, gw.cfg.broker_port)


def test_registry_never_shows_a_secret_again(gw):
    creds = add(gw, "pj-0100", "W01")
    assert len(creds["key"]) == 64 and creds["password"] and creds["hall"] == "gw"
    listed = gw.api.get("/api/v1/devices").json()
    one = gw.api.get("/api/v1/devices/pj-0100").json()
    assert [d["dev"] for d in listed] == ["pj-0100"] and one["state"] == "provisioned"
    text = gw.api.get("/api/v1/devices").text + gw.api.get("/api/v1/devices/pj-0100").text
    assert creds["key"] not in text and creds["password"] not in text and "pw_hash" not in text
    log = (gw.home / "gateway.log").read_text()
    assert creds["key"] not in log and creds["password"] not in log
    assert gw.api.post("/api/v1/devices", json={"dev": "pj-0100", "window": "W02"}).status_code == 409
    assert gw.api.get("/api/v1/devices/pj-9999").status_code == 404


def test_a_device_becomes_active_and_a_retired_one_is_locked_out_at_once(gw):
    creds = add(gw, "pj-0101", "W01")
    d = connect(gw, creds)
    other = connect(gw, add(gw, "pj-0110", "W02"))
    other_drops = []
    other.client.on_disconnect = lambda *a: other_drops.append(a[3])
    gw.business.sign_in("W01", "S1", "王芳")
    gw.business.sign_in("W02", "S2", "李娜")
    assert d.send(d.rating())["status"] == "stored"
    assert gw.api.get("/api/v1/devices/pj-0101").json()["state"] == "active"
    disconnected = []
    d.client.on_disconnect = lambda *a: disconnected.append(a[3])
    d.client.reconnect_delay_set(30, 30)
    assert gw.api.post("/api/v1/devices/pj-0101/retire").json()["state"] == "retired"
    wait_until(lambda: disconnected, 5, what="the broker to drop the retired device")
    with pytest.raises(AssertionError, match="could not connect"):
        connect(gw, creds)
    assert gw.api.post("/api/v1/devices/pj-0101/retire").status_code == 409
    # the broker reloaded its password file and ACL without dropping anyone else
    assert other_drops == [] and other.send(other.rating())["status"] == "stored"
    d.close()
    other.close()


def test_rotation_gives_new_credentials_and_the_old_key_verifies_only_in_grace(gw):
    gw.business.sign_in("W01", "S1", "王芳")
    old = add(gw, "pj-0102", "W01")
    old_dev = connect(gw, old)
    pending = old_dev.rating()  # signed with the old key, still in the device's outbox
    old_dev.close()
    new = gw.api.post("/api/v1/devices/pj-0102/rotate", json={"grace_hours": 1}).json()
    assert new["key"] != old["key"] and new["password"] != old["password"]
    with pytest.raises(AssertionError, match="could not connect"):
        connect(gw, old)
    d = connect(gw, new)
    assert d.send(pending)["status"] == "stored"  # the old key, within its grace
    d.seq = pending["seq"]
    assert d.send(d.rating())["status"] == "stored"  # the new key
    d.close()
    gw.api.post("/api/v1/devices/pj-0102/rotate", json={"grace_hours": 0})
    newest = gw.api.post("/api/v1/devices/pj-0102/rotate", json={"grace_hours": 0}).json()
    d = connect(gw, newest)
    d.seq = 100
    current = d.rating()
    d.key = bytes.fromhex(new["key"])  # a key two rotations old, revoked without grace
    stale = d.rating()
    d.client.publish(d.topic("rating"), json.dumps(stale), qos=1).wait_for_publish()
    d.key = bytes.fromhex(newest["key"])
    assert d.send(current)["status"] == "stored"
    wait_until(lambda: gw.api.get("/api/v1/rejections").json()["counts"].get("bad_signature") == 1, 10)
    d.close()


def test_moving_a_device_pushes_the_new_windows_session(gw):
    gw.business.sign_in("W01", "S1", "王芳")
    gw.business.sign_in("W02", "S2", "李娜")
    d = connect(gw, add(gw, "pj-0103", "W01"))
    assert d.sessions.get(timeout=5)["staff_id"] == "S1"
    gw.api.post("/api/v1/devices/pj-0103/window", json={"window": "W02"}).raise_for_status()
    s = d.sessions.get(timeout=5)
    assert (s["window"], s["staff_id"], s["staff_name"]) == ("W02", "S2", "李娜")
    d.close()


def rating_row(gw, rid):
    rows = gw.api.get("/api/v1/ratings", params={"repeats": True, "limit": 1000}).json()
    return next(r for r in rows if r["id"] == rid)


def test_a_late_rating_is_tagged_by_the_session_when_it_was_pressed(gw):
    d = connect(gw, add(gw, "pj-0104", "W01"))
    gw.business.sign_in("W01", "S1", "王芳")
    pressed_at = time.time_ns() // 1_000_000
    time.sleep(0.2)
    gw.business.sign_in("W01", "S2", "李娜")  # the next shift, before the rating arrives
    late = d.rating(ts=pressed_at)
    assert d.send(late)["status"] == "stored"
    row = rating_row(gw, f"pj-0104:{late['seq']}")
    assert (row["staff_id"], row["staff_name"], row["clock"], row["tag_source"]) == ("S1", "王芳", "device", "session")
    now = d.rating()
    d.send(now)
    assert rating_row(gw, f"pj-0104:{now['seq']}")["staff_id"] == "S2"
    d.close()


def test_an_unsynced_clock_is_corrected_from_the_sync_record_or_flagged(gw):
    d = connect(gw, add(gw, "pj-0105", "W01"))
    gw.business.sign_in("W01", "S1", "王芳")
    time.sleep(1.1)
    # the device's clock says 2000-01-01; it has been up 200 s in boot 5 when it syncs
    d.send({"v": 1, "dev": d.dev, "id": 1, "ts": 946684800000, "boot": 5, "up": 200_000}, leaf="time/req")
    wait_until(lambda: gw.api.get("/api/v1/devices/pj-0105").json()["sync_boot"] == 5, 10)
    synced = gw.api.get("/api/v1/devices/pj-0105").json()
    gw.business.sign_in("W01", "S2", "李娜")
    pressed = d.rating(ts=946684799000, tsync=False, boot=5, up=199_000)  # 1 s before the sync
    d.send(pressed)
    row = rating_row(gw, f"pj-0105:{pressed['seq']}")
    assert row["clock"] == "corrected" and row["staff_id"] == "S1"
    assert abs(_epoch(row["rated_at"]) - (_epoch(synced["sync_at"]) - 1)) <= 1.0  # ISO has whole seconds
    other_boot = d.rating(ts=946684700000, tsync=False, boot=4, up=50_000)
    d.send(other_boot)
    assert rating_row(gw, f"pj-0105:{other_boot['seq']}")["clock"] == "arrival"
    future = d.rating(ts=(int(time.time()) + 3600) * 1000)
    d.send(future)
    assert rating_row(gw, f"pj-0105:{future['seq']}")["clock"] == "suspect"
    d.close()


def _epoch(iso):
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def test_one_case_one_rating_batch_cases_and_the_rated_share(gw):
    d = connect(gw, add(gw, "pj-0106", "W01"))
    gw.business.sign_in("W01", "S1", "王芳")
    batch = gw.api.post("/api/v1/cases", json={"serial": "B-1", "window": "W01", "items": [
        {"code": "A1", "name": "营业执照变更登记"}, {"code": "A2", "name": "税务登记变更"}]})
    assert batch.status_code == 201, batch.text
    gw.api.post("/api/v1/cases", json={"serial": "C-2", "window": "W01", "item_code": "X",
                                       "item_name": "居民身份证换领"})
    first = d.rating(case="B-1", level="very_satisfied")
    second = d.rating(case="B-1", level="very_dissatisfied", reason=["attitude"])
    assert d.send(first)["status"] == "stored" and d.send(second)["status"] == "stored"
    row1, row2 = rating_row(gw, f"pj-0106:{first['seq']}"), rating_row(gw, f"pj-0106:{second['seq']}")
    assert row1["repeat_of"] is None and row1["item_name"] == "营业执照变更登记" and "税务登记变更" in row1["items"]
    assert row2["repeat_of"] == row1["id"] and row2["forward_state"] == "repeat"
    assert [r["id"] for r in gw.api.get("/api/v1/ratings").json()] == [row1["id"]]  # repeats left out
    assert [c["serial"] for c in gw.api.get("/api/v1/cases", params={"rated": False}).json()] == ["C-2"]
    share = gw.api.get("/api/v1/cases/rated-share").json()
    assert (share["cases"], share["rated"], share["share"]) == (2, 1, 0.5)
    s = d.sessions
    wait_until(lambda: gw.platform_records().keys() == {row1["id"]}, 10)
    last = None
    while not s.empty():
        last = s.get()
    assert last["case"] == "C-2" and last["rated"] is False
    d.close()


def test_statistics_filters_and_csv(gw):
    d1 = connect(gw, add(gw, "pj-0107", "W01"))
    d2 = connect(gw, add(gw, "pj-0108", "W02"))
    gw.business.sign_in("W01", "S1", "王芳")
    gw.business.sign_in("W02", "S2", "李娜")
    for dev, level, reason in [(d1, "very_satisfied", ()), (d1, "satisfied", ()), (d1, "dissatisfied", ["slow"]),
                               (d2, "basically_satisfied", ()), (d2, "very_dissatisfied", ["none"])]:
        assert dev.send(dev.rating(level=level, reason=reason))["status"] == "stored"
    overall = gw.api.get("/api/v1/stats").json()
    assert overall == {"ratings": 5, "mean_score": round((10 + 8 + 3 + 6 + 0) / 5, 2),
                       "satisfaction_rate": 0.6, "bad_reviews": 2}
    by_window = {r["window"]: r for r in gw.api.get("/api/v1/stats", params={"by": "window"}).json()}
    assert by_window["W01"]["mean_score"] == 7.0 and by_window["W02"]["bad_reviews"] == 1
    by_staff = gw.api.get("/api/v1/stats", params={"by": "staff"}).json()
    assert [(r["staff_id"], r["staff_name"], r["ratings"]) for r in by_staff] == [("S1", "王芳", 3), ("S2", "李娜", 2)]
    bad = gw.api.get("/api/v1/ratings", params={"level": "very_dissatisfied"}).json()
    assert [r["dev"] for r in bad] == ["pj-0108"] and bad[0]["reason"] == "none"
    today = time.strftime("%Y-%m-%d", time.localtime(time.time() + 8 * 3600 - time.localtime().tm_gmtoff))
    assert len(gw.api.get("/api/v1/ratings", params={"since": today, "until": today}).json()) == 5
    assert gw.api.get("/api/v1/ratings", params={"since": "2001-01-01", "until": "2001-01-02"}).json() == []
    r = gw.api.get("/api/v1/ratings.csv", params={"window": "W01"})
    assert r.headers["content-type"].startswith("text/csv") and r.text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert [x["满意度"] for x in rows] == ["非常满意", "满意", "不满意"] and rows[2]["差评原因"] == "办事效率低"
    x = gw.api.get("/api/v1/ratings.xlsx", params={"window": "W01"})
    assert x.headers["content-type"].startswith("application/vnd.openxmlformats")
    sheet = openpyxl.load_workbook(io.BytesIO(x.content)).active
    table = [[c.value for c in row] for row in sheet.iter_rows()]
    assert table[0][:3] == ["评价编号", "评价时间", "窗口"]
    assert [r[9] for r in table[1:]] == ["非常满意", "满意", "不满意"]
    assert [r[0] for r in table[1:]] == [r["评价编号"] for r in rows]
    d1.close()
    d2.close()


def test_device_health_online_offline_and_stale(gw):
    creds = add(gw, "pj-0109", "W01")
    c, host, port = login(gw.cfg, "pj-0109", creds["password"], "pj-0109")
    c.will_set("pingjia/gw/pj-0109/status", b'{"v":1,"state":"offline"}', qos=1, retain=True)
    c.connect(host, port)
    c.loop_start()
    c.publish("pingjia/gw/pj-0109/status", b'{"v":1,"state":"online"}', qos=1, retain=True).wait_for_publish()
    c.publish("pingjia/gw/pj-0109/health", b'{"v":1,"dev":"pj-0109","fw":"0.1.0","outbox":3,"rssi":-61}', qos=1)
    # status and health are separate messages: wait until both are in
    wait_until(lambda: (lambda d: d["online"] and d["health"])(gw.api.get("/api/v1/devices/pj-0109").json()), 10)
    one = gw.api.get("/api/v1/devices/pj-0109").json()
    assert one["health"]["outbox"] == 3 and one["fw"] == "0.1.0" and one["stale"] is False
    assert one["state"] == "active"
    # three heartbeats missed (the fixture's gateway expects one a second) -> stale
    wait_until(lambda: gw.api.get("/api/v1/devices/pj-0109").json()["stale"], 6)
    c.loop_stop()
    c.socket().close()  # the plug pulled: no DISCONNECT, so the broker sends the will
    wait_until(lambda: not gw.api.get("/api/v1/devices/pj-0109").json()["online"], 10)


def test_the_brokers_dropped_message_counter_is_watched(gw):
    # Mosquitto publishes $SYS every sys_interval (5 s in the generated config)
    wait_until(lambda: gw.api.get("/api/v1/gateway").json()["broker_dropped_messages"] is not None, 12)
    state = gw.api.get("/api/v1/gateway").json()
    assert state["broker_dropped_messages"] == 0 and state["broker_connected"] is True
