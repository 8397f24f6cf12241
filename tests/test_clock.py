"""Steps of the box's clock under a running hall: the gateway's wall clock is moved an hour
forwards, then two back, while the broker, the devices and the platform keep real time
(clock_step.c, preloaded into the gateway alone, as an NTP step moves the wall clock and
not the monotonic one). Tagging, heartbeats' staleness, the latest case and forwarding's
retries must stay right across each step, and nothing is lost or duplicated."""

import struct
import subprocess
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx
import pytest

from simulator.harness import Hall, wait_until

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def clock_step(tmp_path_factory):
    lib = tmp_path_factory.mktemp("clock") / "clock_step.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(lib), str(HERE / "clock_step.c"), "-ldl"], check=True)
    return lib


def step(path: Path, seconds: float) -> None:
    """Set the gateway's wall clock to real time + seconds (the file is mapped: write in place)."""
    with open(path, "r+b") as f:
        f.write(struct.pack("<q", int(seconds * 1e9)))


def test_the_gateways_clock_steps_forwards_and_back_and_the_hall_stays_right(tmp_path, clock_step):
    offset = tmp_path / "clock"
    offset.write_bytes(struct.pack("<q", 0))
    hall = Hall(tmp_path / "hall", devices=2, hall="clock", seed=4)
    hall.gateway_env = {"LD_PRELOAD": str(clock_step), "PINGJIA_CLOCK_FILE": str(offset)}
    try:
        hall.start()
        api = hall.api
        d1, d2 = sorted(hall.devices)
        w1, w2 = hall.windows[d1], hall.windows[d2]
        pressed = [hall.rate(d1), hall.rate(d2)]

        def alarm():
            return api.get("/api/v1/gateway").json()["alarms"].get("clock_step")

        def steps() -> list[int]:  # the steps the gateway has taken in (audited as it commits the shift)
            audit = api.get("/api/v1/audit", params={"limit": 20}).json()
            return [round(e["detail"]["seconds"]) for e in audit if e["action"] == "clock.step"]

        def gateway_now() -> float:  # the gateway's own clock, from its answer's Date
            return parsedate_to_datetime(api.get("/api/v1/health").headers["date"]).timestamp()

        # an hour forwards: the devices heard from a second ago are not stale
        step(offset, 3600)
        seen = wait_until(alarm, 15, what="the clock step's alarm")
        assert "+3600" in seen["detail"], seen
        wait_until(lambda: steps() == [3600], 15, what="the present shifted")  # the alarm comes first
        devs = {d["dev"]: d for d in api.get("/api/v1/devices").json()}
        assert not any(d["stale"] for d in devs.values()), devs
        # once every device took the time again (a press before that is tagged by a device
        # clock the step left behind: flagged, as a delayed rating is), a shift change and a
        # press with no case: the new staff member's
        wait_until(lambda: not alarm(), 30, what="every device to take the time again")
        link = hall.controller.link(d1)
        sessions = link.seen["session"]
        hall.hand_over(w1, ("S2001", "周敏"))
        # the sign-out's session and then the sign-in's: a press between them is nobody's
        assert link.wait(lambda l: l.seen["session"] >= sessions + 2 and l.session_case is None, 10)
        pressed.append(hall.press(d1, "satisfied"))
        wait_until(lambda: hall.stored_rows().get(pressed[-1]["id"]), 20, what="the press after the step")
        assert hall.stored_rows()[pressed[-1]["id"]]["staff_id"] == "S2001"

        # the platform goes away for a while: a rating waits, its next try an hour ahead in the old clock
        httpx.post(f"{hall.cfg.platform_url}/sim/faults", json={"outage_s": 8}).raise_for_status()
        pressed.append(hall.rate(d2))

        # two hours back
        step(offset, -3600)
        seen = wait_until(alarm, 15, what="the second step's alarm")
        assert "-7200" in seen["detail"], seen
        wait_until(lambda: steps() == [-7200, 3600], 15, what="the present shifted back")
        # a new case completed now is the latest, though the clock reads earlier than the last one
        pressed.append(hall.rate(d2))
        row = hall.stored_rows()[pressed[-1]["id"]]
        assert (row["case_no"], row["window"]) == (pressed[-1]["case_no"], w2) and pressed[-1]["case_no"]
        # no heartbeat is in the future
        now = gateway_now()
        for d in api.get("/api/v1/devices").json():
            assert d["stale"] is False
            heard = datetime.fromisoformat(d["health_at"]).timestamp()
            assert heard <= now + 2, (d["dev"], d["health_at"], now)
        pressed += [hall.rate(d1), hall.rate(d2)]

        hall.wait_drained(pressed, timeout=90)  # the waiting rating is tried again in seconds, not in two hours
        summary = hall.summary(pressed)
        assert summary == {"pressed": len(pressed), "stored": len(pressed), "forwarded": len(pressed),
                           "duplicates": 0, "lost": 0, "mistagged": 0, "itemised": 0}, summary
        assert hall.gateway.poll() is None
    finally:
        hall.stop()
