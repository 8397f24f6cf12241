"""A full disk under a busy hall: the whole home (database, broker, logs) on a tmpfs of a
fixed size, filled while citizens press. The gateway must stop acking (each device keeps
its ratings in flash), raise its storage alarm, answer API writes with a 503 that says
why, and resume by itself once space returns, losing and duplicating nothing."""

import os
import subprocess
import time

import pytest
from playwright.sync_api import expect

from simulator.harness import Hall, wait_until
from tests.conftest import SHOTS
from tests.test_console import PASSWORD, open_console

SIZE_MB = 48
DEVICES = 2


@pytest.fixture
def small_disk(tmp_path):
    """A filesystem of SIZE_MB, mounted for this test (the tests run as root: .ci/run)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(path) -> None:
    """Write zeros to `path` until the filesystem has no room left."""
    block = b"\0" * (1 << 20)
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(block)
        except OSError:
            pass
        for size in (1 << 16, 4096, 512):  # the last pieces, so that not even a page is free
            try:
                while True:
                    f.write(block[:size])
            except OSError:
                pass


def test_a_full_disk_stops_the_acks_raises_an_alarm_and_loses_nothing(small_disk, tmp_path, browser):
    home = small_disk / "hall"
    home.mkdir()
    os.chmod(small_disk, 0o755)
    (tmp_path / "flash").mkdir()
    (home / "devices").symlink_to(tmp_path / "flash")  # the devices' flash is theirs, not the box's disk
    hall = Hall(home, devices=DEVICES, hall="full", seed=3)
    hall.cfg.disk_free_min_mb = 8
    try:
        hall.start()
        api = hall.api
        devs = sorted(hall.devices)
        pressed = [hall.press(devs[0], "satisfied")]  # no case completed yet: ratings by session
        wait_until(lambda: pressed[0]["id"] in hall.stored_rows(), 20, what="the first rating")
        r = api.post("/api/v1/users", json={"name": "zhang.wei", "role": "admin", "windows": [], "password": PASSWORD})
        assert r.status_code == 201, r.text
        page = open_console(hall, browser, "zhang.wei")  # logged in before: a login is a write
        banner = page.locator(".alarms [data-alarm=storage]")
        expect(banner).to_have_count(0)

        fill(small_disk / "filler")
        # Commits may go on for a while in space SQLite holds already (its WAL); press until one fails
        alarms = lambda: api.get("/api/v1/gateway").json().get("alarms", {})  # noqa: E731
        for i in range(400):
            pressed.append(hall.press(devs[i % DEVICES], "very_satisfied"))
            if "storage" in alarms():
                break
        assert "storage" in alarms(), "the disk filled, but the gateway never failed to commit"
        wait_until(lambda: "disk_low" in alarms(), 30, what="the low-disk alarm")
        state = api.get("/api/v1/gateway").json()
        assert "free space" in state["alarms"]["storage"]["detail"]
        assert api.get("/api/v1/health").json()["alarms"] == ["disk_low", "storage"]
        assert 'pingjia_alarm{name="storage"} 1.0' in api.get("/metrics").text
        expect(banner).to_contain_text("网关无法写入数据库")  # live, on the event stream
        expect(page.locator(".alarms [data-alarm=disk_low]")).to_contain_text("MB free")
        page.screenshot(path=str(SHOTS / "alarm-disk-full.png"))

        # while full: presses are confirmed and kept by the devices, and none is acked
        stored_before = set(hall.stored_rows())
        waiting = [hall.press(d, "satisfied") for d in devs for _ in range(3)]
        pressed += waiting
        time.sleep(3)
        for p in waiting:
            seq = int(p["id"].split(":")[1])
            assert seq not in hall.controller.link(p["dev"]).acked, f"{p['id']} acked with no room to store it"
        assert set(hall.stored_rows()) == stored_before
        r = api.post("/api/v1/windows/W01/sign-in", json={"staff_id": "S9", "staff_name": "某某"})
        assert r.status_code == 503 and "database" in r.json()["detail"], r.text
        assert hall.gateway.poll() is None and hall.broker.proc.poll() is None

        (small_disk / "filler").unlink()
        wait_until(lambda: not alarms().get("storage"), 30, what="the gateway to commit again")
        expect(banner).to_have_count(0)
        hall.wait_drained(pressed, timeout=60)
        summary = hall.summary(pressed)
        assert summary == {"pressed": len(pressed), "stored": len(pressed), "forwarded": len(pressed),
                           "duplicates": 0, "lost": 0, "mistagged": 0, "itemised": 0}, summary
        for p in waiting:
            seq = int(p["id"].split(":")[1])
            assert hall.controller.link(p["dev"]).wait(lambda l, s=seq: s in l.acked, 20), f"{p['id']} never acked"
        wait_until(lambda: not alarms(), 30, what="the low-disk alarm to clear")
        assert 'pingjia_alarm{name="storage"} 0.0' in api.get("/metrics").text
    finally:
        hall.stop()
