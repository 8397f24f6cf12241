"""`pingjia sim devices`: real-firmware devices as serial ports, driven by mpremote as a
technician drives a USB-connected ESP32, and by the simulator's commands as citizens
and faults drive them."""

import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import serial

from firmware import tool
from simulator.harness import wait_until


class Sim:
    """`pingjia sim devices` in its own process; one command in, one JSON line out."""

    def __init__(self, home: Path, count: int, model: str = "five-button"):
        argv = [sys.executable, "-m", "gateway", "sim", "devices", "--count", str(count), "--home", str(home),
                "--model", model]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=open(home.parent / "sim.err", "wb"), text=True)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [self.lines.put(l) for l in self.proc.stdout], daemon=True).start()
        self.ready = self.next(90)

    def next(self, timeout: float = 30) -> dict:
        return json.loads(self.lines.get(timeout=timeout))

    def run(self, line: str, timeout: float = 30) -> dict:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.next(timeout)

    def device(self, dev: str) -> dict:
        return next(d for d in self.run("list")["devices"] if d["dev"] == dev)

    def wait_online(self, dev: str, online: bool = True, timeout: float = 20) -> dict:
        return wait_until(lambda: (d := self.device(dev))["online"] == online and d, timeout, interval=0.2,
                          what=f"{dev} online to be {online}")


def mpremote(port: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([tool("mpremote", "mpremote"), "connect", port, *args],
                          capture_output=True, text=True, timeout=60)


def _stop(s: Sim) -> None:
    if s.proc.poll() is None:
        s.proc.terminate()  # SIGTERM stops the hall too; a kill -9 would orphan its processes
        try:
            s.proc.wait(60)
        except subprocess.TimeoutExpired:
            s.proc.kill()
            s.proc.wait()


@pytest.fixture
def sim(tmp_path):
    s = Sim(tmp_path / "hall", 2)
    yield s
    _stop(s)


def test_mpremote_reaches_the_repl_of_a_running_device_and_the_app_comes_back(sim, tmp_path):
    ready = sim.ready
    port = ready["ports"]["pj-0001"]
    assert Path(port).resolve().as_posix().startswith("/dev/pts/")
    first = sim.run("case pj-0001")
    assert sim.run("press pj-0001 satisfied")["case_no"] == first["case"]

    # Ctrl-C interrupts the app; the raw REPL runs code in the device's flash
    r = mpremote(port, "exec", "import os, json; print(json.dumps(os.listdir()))")
    assert r.returncode == 0, r.stderr
    # the boot files in the flash root beside the data, the firmware in its slot, as on the board
    listed = set(json.loads(r.stdout.strip()))
    assert {"main.py", "slots.py", "slot.json", "slot.a", "config.json", "outbox.d", "seq"} <= listed
    assert not {n for n in listed if n.endswith(".py")} - {"main.py", "slots.py"}
    assert sim.wait_online("pj-0001", False)["online"] is False  # the app stopped at the REPL
    assert sim.device("pj-0002")["online"] is True  # the other device is untouched

    # file copy both ways, the port kept across the soft resets mpremote does
    note = tmp_path / "note.txt"
    note.write_text("窗口 W01 检修\n")
    r = mpremote(port, "fs", "cp", str(note), ":note.txt")
    assert r.returncode == 0, r.stderr
    assert (Path(sim.device("pj-0001")["flash"]) / "note.txt").read_text() == note.read_text()
    back = tmp_path / "back.json"
    assert mpremote(port, "fs", "cp", ":config.json", str(back)).returncode == 0
    assert json.loads(back.read_text())["dev"] == "pj-0001"
    r = mpremote(port, "exec", "print(open('note.txt').read())")
    assert r.stdout.strip() == "窗口 W01 检修"
    assert mpremote(port, "soft-reset").returncode == 0

    # A soft reset from the friendly REPL (Ctrl-D) boots the app again, as on the board
    boots = sim.device("pj-0001")["boots"]
    with serial.Serial(port, 115200, timeout=0.2) as s:
        s.write(b"\r\x03")
        time.sleep(0.3)
        assert s.read(1000).endswith(b">>> ")
        s.write(b"\x04")
        time.sleep(0.5)
        assert b"MPY: soft reboot\r\n" in s.read(1000)
    d = sim.wait_online("pj-0001")
    assert d["boots"] == boots + 1
    second = sim.run("case pj-0001")
    rated = sim.run("press pj-0001 very_dissatisfied slow")
    assert rated["case_no"] == second["case"] and rated["level"] == "very_dissatisfied"

    # both ratings reached the gateway, the one made before the REPL session and the one after
    token = (Path(ready["home"]) / "local.token").read_text().strip()  # the box's own commands' token
    api = httpx.Client(base_url=ready["api"], headers={"Authorization": f"Bearer {token}"})
    rows = wait_until(lambda: len(r := api.get("/api/v1/ratings", params={"window": "W01"}).json()) == 2 and r,
                      20, interval=0.3, what="both ratings")
    assert sorted((r["case_no"], r["level"], r["reason"]) for r in rows) == sorted(
        [(first["case"], "satisfied", ""), (second["case"], "very_dissatisfied", "slow")])


def test_power_wifi_screen_and_bad_commands(sim, tmp_path):
    assert sim.run("power pj-0002 off") == {"dev": "pj-0002", "power": "off"}
    assert sim.device("pj-0002")["online"] is False
    assert "not running" in sim.run("wifi pj-0002 off")["error"]
    sim.run("power pj-0002 on")
    assert sim.wait_online("pj-0002")["boots"] == 2
    # the port stayed where it was through the power cut, and the REPL is behind it
    r = mpremote(sim.ready["ports"]["pj-0002"], "exec", "print(6 * 7)")
    assert (r.returncode, r.stdout.strip()) == (0, "42")

    png = sim.run(f"screen pj-0001 {tmp_path / 's.png'}")["png"]
    assert Path(png).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    for bad in ("bogus", "press pj-0009 satisfied", "press pj-0001 dissatisfied", "press pj-0001 great",
                "button pj-0001 7", "drift pj-0001 soon"):
        assert "error" in sim.run(bad), bad
    assert sim.proc.poll() is None
    assert sim.run("wifi pj-0001 off") == {"dev": "pj-0001", "wifi": "off"}

    sim.proc.stdin.write("quit\n")
    sim.proc.stdin.flush()
    assert sim.proc.wait(60) == 0
    assert not Path(sim.ready["ports"]["pj-0001"]).exists()  # the ports go with the simulator


def test_tablets_in_the_sim_are_tapped_by_target_and_rate_parts(tmp_path):
    sim = Sim(tmp_path / "hall", 2, model="mixed")
    try:
        assert [d["model"] for d in sim.run("list")["devices"]] == ["five-button", "tablet"]
        case = sim.run("case pj-0002")["case"]
        shown = wait_until(lambda: (t := sim.run("targets pj-0002"))["lines"][1:2] == [f"办件 {case}"] and t, 10,
                           what="the case on the tablet")
        assert {f"level:{lv}" for lv in ("very_satisfied", "dissatisfied")} <= set(shown["targets"])
        rated = sim.run("press pj-0002 dissatisfied slow staff=satisfied channel=dissatisfied")
        assert rated["case_no"] == case and rated["parts"] == {"staff": "satisfied", "channel": "dissatisfied"}
        png = tmp_path / "tablet.png"
        assert Path(sim.run(f"screen pj-0002 {png}")["png"]) == png.resolve()
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        for bad, says in (("press pj-0001 satisfied staff=satisfied", "five buttons"),
                          ("press pj-0002 satisfied staff=superb", "unknown level"),
                          ("press pj-0002 satisfied mood=satisfied", "parts are"),
                          ("touch pj-0001 level:satisfied", "five buttons"),
                          ("touch pj-0002 nothing:here", "shows no")):
            assert says in sim.run(bad).get("error", ""), bad
        sim.run("touch pj-0002 5,5")  # a point: the band, where nothing is to tap
        assert sim.device("pj-0002")["online"]
    finally:
        _stop(sim)
