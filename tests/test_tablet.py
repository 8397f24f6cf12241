"""The tablet evaluator on the real firmware, through the real broker (TLS), gateway and
platform stand-in, beside a five-button: a citizen taps a level, reasons and parts; a bad
review goes only with a reason, or on the timeout with "none"; the timeout sends what was
chosen and invents nothing; one rating per case; a rating confirmed and then cut off by a
power cut arrives intact, its case still rated; the screen is the case, drawn; a tablet's
build goes over the air to tablets only; the staff member's photo shows, and a device's key
reads no other staff member's photo."""

import io
import json
import os
import time

import httpx
from PIL import Image
from playwright.sync_api import expect

from gateway.auth import account_token
from gateway.cli import zip_build
from gateway.data import photos
from simulator import builds, screen
from simulator.business import portrait
from simulator.harness import wait_until
from tests.protocol_device import login
from tests.test_console import PASSWORD, open_console, shot

TILE_COLOURS = {"very_satisfied": (47, 158, 68), "dissatisfied": (247, 103, 7), "very_dissatisfied": (224, 49, 49)}


def stored(hall, rid):
    return wait_until(lambda: hall.stored_rows().get(rid), 20, what=f"{rid} to be stored")


def near(px, colour):
    return all(abs(a - b) <= 8 for a, b in zip(px, colour, strict=True))


def test_a_tablet_rates_levels_reasons_and_parts_beside_a_five_button(hall_factory, browser):
    hall = hall_factory(devices=2, model="mixed", device_config={"reason_timeout_s": 3})
    button, tablet = "pj-0001", "pj-0002"
    assert hall.devices[tablet].model == "tablet" and hall.devices[button].model == "five-button"
    link = hall.controller.link(tablet)

    # the case screen: the case as the gateway tagged it, and five level tiles
    case = hall.new_case(tablet)
    link.wait(lambda l: "level:very_satisfied" in l.targets, 5)
    assert link.display[1] == "办件 " + case and hall.staff["W02"][0] in link.display[2]
    px = screen.rgb(link.screen())
    for level, colour in TILE_COLOURS.items():
        x, y, w, h = link.targets[f"level:{level}"]
        assert near(px[y + h - 4][x + 4], colour), (level, px[y + h - 4][x + 4])
    band = px[5:40]
    assert sum(1 for row in band for p in row if p == (255, 255, 255)) > 300  # the item's name in white on blue

    # a good review with two parts
    p = hall.press(tablet, "very_satisfied", parts={"staff": "very_satisfied", "channel": "satisfied"})
    row = stored(hall, p["id"])
    assert json.loads(row["parts"]) == {"staff": "very_satisfied", "channel": "satisfied"}
    assert row["case_no"] == case and row["level"] == "very_satisfied" and row["reason"] == ""

    # a bad review: no submit until a reason is chosen, and the parts screen sends the citizen back for one
    hall.new_case(tablet)
    d = link.seen["details"]
    assert link.choose("level:dissatisfied", lambda l: l.seen["details"] > d, 10)
    assert "submit" not in link.targets and "tag:slow" in link.targets
    assert link.choose("parts", lambda l: "reasons" in l.targets, 10)
    assert "submit" not in link.targets
    assert link.choose("reasons", lambda l: "tag:attitude" in l.targets, 10)
    for tag in ("attitude", "trips"):
        assert link.choose(f"tag:{tag}", lambda l, t=tag: t in l.display[1], 10)
    assert link.choose("parts", lambda l: "part:staff:very_dissatisfied" in l.targets, 10)
    assert "submit" in link.targets  # with reasons, the parts screen submits
    assert link.choose("part:staff:very_dissatisfied", lambda l: "staff" in l.display[1], 10)
    n = len(link.confirmed)
    assert link.choose("submit", lambda l: len(l.confirmed) > n, 10)
    ev = link.confirmed[-1]
    assert ev["reason"] == ["attitude", "trips"] and ev["parts"] == {"staff": "very_dissatisfied"}
    row = stored(hall, f"{tablet}:{ev['seq']}")
    assert row["reason"] == "attitude,trips" and json.loads(row["parts"]) == {"staff": "very_dissatisfied"}

    # the citizen walks away: a bad review with a part and no reason goes with "none"; a level is never made up
    hall.new_case(tablet)
    d = link.seen["details"]
    assert link.choose("level:very_dissatisfied", lambda l: l.seen["details"] > d, 10)
    assert link.choose("parts", lambda l: "part:item:dissatisfied" in l.targets, 10)
    assert link.choose("part:item:dissatisfied", lambda l: "item" in l.display[1], 10)
    n = len(link.confirmed)
    assert link.wait(lambda l: len(l.confirmed) > n, 10), "the timeout sent nothing"
    ev = link.confirmed[-1]
    assert ev["level"] == "very_dissatisfied" and ev["reason"] == ["none"] and ev["parts"] == {"item": "dissatisfied"}
    row = stored(hall, f"{tablet}:{ev['seq']}")
    assert row["reason"] == "none" and json.loads(row["parts"]) == {"item": "dissatisfied"}
    # a case left on screen untouched sends nothing, however long it waits
    case = hall.new_case(tablet)
    n = len(link.confirmed)
    time.sleep(4)
    assert len(link.confirmed) == n

    # one rating per case: once rated, no tile is offered, and a tap where one was is nothing
    p = hall.press(tablet, "satisfied")
    assert p["case_no"] == case and p["parts"] == {}
    assert not [t for t in link.targets if t.startswith("level:")]
    misses = link.seen["miss"]
    time.sleep(0.3)  # past the touch's minimum gap: a tap, not a bounce of the last
    link.send({"touch": [150, 250]})  # where 满意's tile was
    assert link.wait(lambda l: l.seen["miss"] > misses, 5)
    assert [c["case"] for c in link.confirmed].count(case) == 1

    # the five-button beside it rates as before: reason by button, no parts
    p = hall.press(button, "very_dissatisfied", "slow")
    row = stored(hall, p["id"])
    assert row["reason"] == "slow" and not row["parts"]

    # every rating reached the platform once, tagged as the citizen saw it
    pressed = [{"id": f"{tablet}:{c['seq']}", "dev": tablet, "case_no": c["case"], "window": "W02",
                "staff_id": hall.staff["W02"][0], "level": c["level"], "parts": c.get("parts") or {}}
               for c in link.confirmed] + [p]
    hall.wait_drained(pressed)
    s = hall.summary(pressed)
    assert s["lost"] == 0 and s["duplicates"] == 0 and s["mistagged"] == 0 and s["itemised"] == 3, s

    # the console's statistics show each part: staff rated twice (very satisfied, very dissatisfied)
    r = hall.api.post("/api/v1/users", json={"name": "zhang.wei", "role": "admin", "windows": [],
                                             "password": PASSWORD})
    assert r.status_code == 201, r.text
    page = open_console(hall, browser, "zhang.wei")
    page.click("nav a[data-page=stats]")
    staff = page.locator("table.by-part tr", has_text="工作人员").locator("td")
    expect(staff.nth(1)).to_have_text("2")
    expect(staff.nth(4)).to_have_text("1")  # one of the two a bad review
    expect(page.locator("table.by-part tbody tr")).to_have_count(3)  # staff, channel, item
    expect(page.locator("table.by-part")).to_contain_text("服务渠道")
    shot(page, "stats-parts")
    assert not page.errors, page.errors


def test_a_tablet_rating_confirmed_before_a_power_cut_arrives_intact(hall_factory):
    hall = hall_factory(devices=1, model="tablet")
    dev = next(iter(hall.devices))
    link = hall.controller.link(dev)
    case = hall.new_case(dev)
    hall.kill_gateway()  # nothing is acked: the rating lives in the tablet's flash alone
    d = link.seen["details"]
    assert link.choose("level:dissatisfied", lambda l: l.seen["details"] > d, 10)
    assert link.choose("tag:materials", lambda l: "materials" in l.display[1], 10)
    assert link.choose("parts", lambda l: "part:item:satisfied" in l.targets, 10)
    assert link.choose("part:efficiency:very_dissatisfied", lambda l: "efficiency" in l.display[1], 10)
    n = len(link.confirmed)
    assert link.choose("submit", lambda l: len(l.confirmed) > n, 10)
    seq = link.confirmed[-1]["seq"]
    hall.power_cycle(dev)  # the plug pulled after the thanks
    link = hall.controller.link(dev)
    hall.start_gateway()
    row = stored(hall, f"{dev}:{seq}")
    assert row["case_no"] == case and row["level"] == "dissatisfied" and row["reason"] == "materials"
    assert json.loads(row["parts"]) == {"efficiency": "very_dissatisfied"}
    # the rated case stays rated across the reboot: its session shows no tiles
    wait_until(lambda: link.session_case == case, 20, what="the session again")
    assert link.wait(lambda l: l.display[:1] == ["欢迎评价"], 5), link.display
    assert not [t for t in link.targets if t.startswith("level:")]


def test_a_tablet_build_goes_over_the_air_to_tablets_only(hall_factory, tmp_path):
    hall = hall_factory(devices=2, model="mixed", device_config={"trial_s": 30})
    button, tablet = "pj-0001", "pj-0002"
    builds.make(tmp_path / "tablet", "0.2.0-tablet", model="tablet")
    r = hall.api.post("/api/v1/firmware", content=zip_build(tmp_path / "tablet"),
                      headers={"Content-Type": "application/zip"})
    assert r.status_code == 201 and r.json()["model"] == "tablet", r.text
    h = r.json()["hash"]
    # named, a five-button is refused before anything is sent; unnamed, only the tablets are taken
    r = hall.api.post("/api/v1/rollouts", json={"hash": h, "devices": [button, tablet]})
    assert r.status_code == 409 and button in r.json()["detail"], r.text
    r = hall.api.post("/api/v1/rollouts", json={"hash": h, "canary": 1, "shares": [1.0]})
    assert r.status_code == 201, r.text
    assert [d["dev"] for d in r.json()["devices"]] == [tablet]
    rid = r.json()["id"]
    done = wait_until(lambda: (x := hall.api.get(f"/api/v1/rollouts/{rid}").json())["state"] in ("done", "halted")
                      and x, 240, interval=0.5, what="the rollout to finish")
    assert done["state"] == "done", done
    health = hall.api.get(f"/api/v1/devices/{tablet}").json()["health"]
    assert health["fw"] == "0.2.0-tablet" and health["fwh"] == h and health["model"] == "tablet"
    # the updated tablet still rates its parts
    hall.controller.link(tablet).wait(lambda l: l.link_up, 20)
    hall.new_case(tablet)
    p = hall.press(tablet, "satisfied", parts={"item": "very_satisfied"})
    row = stored(hall, p["id"])
    assert row["fw"] == "0.2.0-tablet" and json.loads(row["parts"]) == {"item": "very_satisfied"}


def test_the_staff_photo_shows_and_a_device_key_gets_no_other_face(hall_factory):
    hall = hall_factory(devices=2, model="tablet")
    dev = "pj-0001"
    link = hall.controller.link(dev)
    hall.new_case(dev)
    assert link.wait(lambda l: l.seen["photo"] >= 1 and l.display[4:] == ["photo"], 20), link.display
    # the pixels on the screen are the gateway's photo of the staff member at the window
    staff = hall.staff["W01"][0]
    r = hall.api.get(f"/api/v1/staff/{staff}/photo")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    want = Image.open(io.BytesIO(r.content)).convert("RGB")
    assert want.size == (96, 96)
    px = screen.rgb(link.screen())
    x0, y0 = 480 - 96 - 8, 46 + 4
    assert all(px[y0 + y][x0 + x] == want.getpixel((x, y)) for y in range(0, 96, 7) for x in range(0, 96, 7))

    # the stolen key of pj-0001 asks for the photo of the staff member at the other window: refused, unanswered
    other = hall._read(lambda db: photos.hash_of(db, hall.staff["W02"][0]))
    mine = hall._read(lambda db: photos.hash_of(db, staff))
    assert other and mine and other != mine
    creds = hall.credentials[dev]
    link.send({"wifi": False})
    assert link.wait(lambda l: not l.link_up, 10)
    chunks: list[dict] = []
    c, host, port = login(hall.cfg, creds["user"], creds["password"], client_id=dev)
    c.on_message = lambda _c, _u, m: chunks.append(json.loads(m.payload))
    c.connect(host, port)
    c.loop_start()
    try:
        c.subscribe(f"pingjia/{hall.cfg.hall}/{dev}/photo/chunk", 0)
        time.sleep(0.5)
        before = hall.rejection_counts().get("photo_request", 0)
        topic = f"pingjia/{hall.cfg.hall}/{dev}/photo/req"
        for off in (0, 2048):
            c.publish(topic, json.dumps({"v": 1, "dev": dev, "hash": other, "off": off}), qos=0)
        wait_until(lambda: hall.rejection_counts().get("photo_request", 0) >= before + 2, 10,
                   what="the requests for another's photo refused")
        # its own window's photo, asked for 60 times at once: at most 20 a second answered
        for _ in range(60):
            c.publish(topic, json.dumps({"v": 1, "dev": dev, "hash": mine, "off": 0}), qos=0)
        wait_until(lambda: hall.rejection_counts().get("photo_request", 0) >= before + 2 + 20, 10,
                   what="the flood limited")
        time.sleep(1)
        assert all(ch["hash"] == mine for ch in chunks) and 1 <= len(chunks) <= 40, len(chunks)
        for bad in ({"v": 1, "dev": dev, "hash": mine, "off": -1}, {"v": 1, "dev": dev, "hash": "../x", "off": 0},
                    {"v": 1, "dev": "pj-0002", "hash": mine, "off": 0}, [1, 2]):
            c.publish(topic, json.dumps(bad), qos=0)
        wait_until(lambda: hall.rejection_counts().get("schema", 0) >= 2, 10, what="malformed requests refused")
    finally:
        c.loop_stop()
        c.disconnect()
        link.send({"wifi": True})
    assert link.wait(lambda l: l.link_up, 20)

    # a shift change: the next staff member's photo replaces the first; a removed photo leaves the case without
    n = link.seen["photo"]
    hall.hand_over("W01", ("S1009", "孙丽"))
    assert link.wait(lambda l: l.seen["photo"] > n, 20), "the next staff member's photo never came"
    hall.new_case(dev)
    assert link.wait(lambda l: "S1009" in l.display[2] and l.display[4:] == ["photo"], 10), link.display
    assert hall.api.delete("/api/v1/staff/S1009/photo").status_code == 200
    assert link.wait(lambda l: "S1009" in l.display[2] and l.display[4:] == [""], 10), link.display
    p = hall.press(dev, "satisfied")  # and it rates as ever
    assert stored(hall, p["id"])["staff_id"] == "S1009"


def test_photo_uploads_must_be_real_pictures_from_the_business_system_or_an_admin(hall_factory):
    hall = hall_factory(devices=1, model="tablet")
    put = hall.business.http.put
    for body, ctype in ((b"not a picture", "image/jpeg"), (_gif(), "image/gif"), (_bomb(), "image/png"),
                        (b"\xff\xd8\xff\xe0" + os.urandom(5000), "image/jpeg")):
        r = put("/api/v1/staff/S1001/photo", content=body, headers={"Content-Type": ctype})
        assert r.status_code == 400, (ctype, r.status_code, r.text)
    r = put("/api/v1/staff/S1001/photo", content=b"\0" * 1_100_000, headers={"Content-Type": "image/png"})
    assert r.status_code == 413
    r = put("/api/v1/staff/..%2Fetc/photo", content=portrait("x"), headers={"Content-Type": "image/jpeg"})
    assert r.status_code in (404, 422)
    # the photo the tablet shows is still the first one
    assert hall.api.get("/api/v1/staff/S1001/photo").status_code == 200
    viewer = hall._read(lambda db: account_token(db, "v1", "viewer", "a viewer"))
    r = httpx.put(f"{hall.cfg.api_url}/api/v1/staff/S1001/photo", content=portrait("x"),
                  headers={"Authorization": f"Bearer {viewer}", "Content-Type": "image/jpeg"})
    assert r.status_code == 403
    r = httpx.get(f"{hall.cfg.api_url}/api/v1/staff/S1001/photo", headers={"Authorization": f"Bearer {viewer}"})
    assert r.status_code == 200  # a viewer sees it, as the tablet's citizens do
    audit = hall.api.get("/api/v1/audit", params={"action": "staff.photo"}).json()
    assert any(a["target"] == "S1001" for a in audit)


def _gif() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (10, 10), (1, 2, 3)).save(out, "GIF")
    return out.getvalue()


def _bomb() -> bytes:
    """A PNG of 10,000 x 10,000 pixels in a few kilobytes: decoded as RGB, 300 MB."""
    out = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(out, "PNG")
    return out.getvalue()
