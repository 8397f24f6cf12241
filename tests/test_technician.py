"""`pingjia device ...`: a technician's tools against the simulator's serial ports, each a
real-firmware device (or a blank board with MicroPython only) behind a pty, driven through
mpremote's transport and pyserial as a USB-connected ESP32 is; the gateway is a real one."""

import json
import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial

from simulator.harness import Hall, wait_until
from simulator.virtual_device import VirtualDevice

WIFI = ("hall-wifi", "s3cret-passw0rd")


def device_cmd(*args: str, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway", "device", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    out = tmp_path_factory.mktemp("fw") / "firmware"
    r = subprocess.run([sys.executable, "-m", "gateway", "firmware", "build", "--out", str(out)],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def hall(tmp_path_factory):
    h = Hall(tmp_path_factory.mktemp("tech") / "hall", devices=1, hall="tech", seed=4, serial=True)
    h.start()
    try:
        yield h
    finally:
        h.stop()


@pytest.fixture(scope="module")
def blank(hall):
    """A new board: MicroPython and nothing else, on its own serial port."""
    d = VirtualDevice(hall.home / "devices" / "new-board", None, port=hall.home / "ports" / "new-board", wifi=WIFI)
    d.start()
    yield d
    d.stop()


def one_line(r: subprocess.CompletedProcess) -> str:
    """A refusal is one line that says what to do, no traceback."""
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def secrets_of(flash: Path) -> list[str]:
    cfg = json.loads((flash / "config.json").read_text())
    return [cfg["key"], cfg["password"], WIFI[1]]


def test_a_blank_board_is_set_up_in_one_command_and_no_secret_is_printed(hall, blank, build):
    port = str(blank.port.link)
    wrong = device_cmd("provision", port, "--window", "W09", "--dev", "pj-0099", "--home", str(hall.home),
                       "--wifi", WIFI[0], "--timeout", "30", env={"PINGJIA_WIFI_PASSWORD": "not-the-password"})
    assert "no firmware on the board" in one_line(wrong)  # nothing on it to run yet
    assert hall.api.get("/api/v1/devices/pj-0099").status_code == 404  # and nothing registered

    r = device_cmd("setup", port, str(build), "--window", "W09", "--dev", "pj-0099", "--home", str(hall.home),
                   "--wifi", WIFI[0], "--json", env={"PINGJIA_WIFI_PASSWORD": WIFI[1]})
    assert r.returncode == 0, r.stderr
    done = json.loads(r.stdout)
    manifest = json.loads((build / "manifest.json").read_text())
    assert done["dev"] == "pj-0099" and done["window"] == "W09" and done["online"] is True
    assert done["install"]["content_hash"] == manifest["content_hash"]
    assert done["install"]["copied"] == len(manifest["files"]) + len(manifest["boot"])
    for secret in secrets_of(blank.flash):
        assert secret not in r.stdout and secret not in r.stderr
    d = hall.api.get("/api/v1/devices/pj-0099").json()
    assert d["online"] and d["window"] == "W09" and d["state"] == "active"
    wait_until(lambda: hall.api.get("/api/v1/devices/pj-0099").json()["health"].get("fw") == manifest["version"],
               30, what="its heartbeat")
    # the board runs the build from its slot, the boot files in its root
    flash = sorted(p.name for p in blank.flash.iterdir())
    assert {"main.py", "slots.mpy", "slot.json", "config.json"} <= set(flash)
    assert not [n for n in flash if n.endswith(".mpy") and n != "slots.mpy"]

    # provisioning again a board in use needs --replace; with it the board gets new credentials
    again = device_cmd("provision", port, "--window", "W09", "--dev", "pj-0099", "--home", str(hall.home))
    assert "--replace" in one_line(again)
    old = secrets_of(blank.flash)[:2]
    r = device_cmd("provision", port, "--window", "W09", "--dev", "pj-0099", "--home", str(hall.home),
                   "--wifi", WIFI[0], "--replace", env={"PINGJIA_WIFI_PASSWORD": WIFI[1]})
    assert r.returncode == 0, r.stderr
    assert "pj-0099 at window W09 is online and time-synced" in r.stdout
    assert secrets_of(blank.flash)[:2] != old


def test_a_wrong_wifi_password_is_named(hall, blank, build):
    port = str(blank.port.link)
    r = device_cmd("provision", port, "--window", "W09", "--dev", "pj-0099", "--home", str(hall.home),
                   "--wifi", WIFI[0], "--replace", "--timeout", "30", env={"PINGJIA_WIFI_PASSWORD": "wrong-one"})
    assert "Wi-Fi refused the password" in one_line(r)
    r = device_cmd("provision", port, "--window", "W09", "--dev", "pj-0099", "--home", str(hall.home),
                   "--wifi", "other-wifi", "--replace", "--timeout", "30", env={"PINGJIA_WIFI_PASSWORD": WIFI[1]})
    assert "sees no Wi-Fi of that name" in one_line(r)
    r = device_cmd("provision", port, "--window", "W09", "--dev", "pj-0099", "--home", str(hall.home),
                   "--wifi", WIFI[0], "--replace", env={"PINGJIA_WIFI_PASSWORD": WIFI[1]})
    assert r.returncode == 0, r.stderr


def test_an_install_cut_short_resumes_and_the_old_version_runs_meanwhile(hall, build):
    dev = hall.devices["pj-0001"]
    port, slot_b = str(dev.port.link), dev.flash / "slot.b"
    before = json.loads((dev.flash / "slot.json").read_text())
    assert before == {"active": "slot.a"}
    p = subprocess.Popen([sys.executable, "-m", "gateway", "device", "install", port, str(build)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # the cable is pulled once a few files are on the board
    wait_until(lambda: slot_b.exists() and len(list(slot_b.glob("*.mpy"))) >= 3, 120, what="files copied")
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert json.loads((dev.flash / "slot.json").read_text()) == before  # still the old version's
    r = device_cmd("install", port, str(build), "--json")
    assert r.returncode == 0, r.stderr
    done = json.loads(r.stdout)
    manifest = json.loads((build / "manifest.json").read_text())
    assert done["slot"] == "slot.b" and 0 < done["copied"] < len(manifest["files"]) + len(manifest["boot"])
    assert json.loads((dev.flash / "slot.json").read_text()) == {"active": "slot.b"}
    link = hall.controller.link("pj-0001", timeout=30)
    assert link.wait(lambda l: l.link_up, 30)  # the new version is up, with the device's data
    assert wait_until(lambda: hall.api.get("/api/v1/devices/pj-0001").json()["online"], 30)
    hall.new_case("pj-0001")
    assert hall.press("pj-0001", "satisfied")["level"] == "satisfied"
    again = json.loads(device_cmd("install", port, str(build), "--json").stdout)
    assert again["already"] is True and again["copied"] == 0


def test_info_says_what_is_on_the_board_without_its_secrets(hall):
    dev = hall.devices["pj-0001"]
    r = device_cmd("info", str(dev.port.link), "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["files_match"] is True and info["firmware"] and info["slot"] in ("slot.a", "slot.b")
    assert info["config"]["dev"] == "pj-0001" and info["config"]["ca"] is True
    assert "key" not in info["config"] and "password" not in info["config"]
    assert isinstance(info["boot_count"], int) and info["boot_count"] >= 1
    assert info["last_reset"] and info["outbox"] == 0
    for secret in secrets_of(dev.flash)[:2]:
        assert secret not in r.stdout
    # a file changed on the board is found
    spare = next(p for p in (dev.flash / info["slot"]).iterdir() if p.name.startswith("board_esp32."))
    spare.write_bytes(spare.read_bytes() + b"\0")  # a module only an ESP32 imports
    r = device_cmd("info", str(dev.port.link))
    assert r.returncode == 0 and "DIFFER" in r.stdout
    # and the app runs again afterwards
    assert hall.controller.link("pj-0001", timeout=30).wait(lambda l: l.link_up, 30)


def test_what_a_technician_meets_in_the_field_is_one_line(hall, tmp_path):
    dev = hall.devices["pj-0001"]
    port = str(dev.port.link)
    with serial.Serial(port, 115200, exclusive=True):  # another program has the port
        assert "busy" in one_line(device_cmd("info", port))
    assert "no serial port" in one_line(device_cmd("info", str(tmp_path / "ttyUSB7")))
    master, slave = pty.openpty()  # a port where no MicroPython answers
    try:
        assert "no MicroPython answers" in one_line(device_cmd("info", os.ttyname(slave), timeout=60))
    finally:
        os.close(master)
        os.close(slave)
    r = device_cmd("provision", port, "--window", "W01", "--gateway", "http://127.0.0.1:9",
                   env={"PINGJIA_TOKEN": "pj_not_a_token"})
    assert "does not answer" in one_line(r)
    r = device_cmd("provision", port, "--window", "W01", "--gateway", hall.cfg.api_url,
                   env={"PINGJIA_TOKEN": "pj_not_a_token"})
    assert "refused the token" in one_line(r)
    assert hall.controller.link("pj-0001", timeout=30).wait(lambda l: l.link_up, 30)


def test_the_console_is_the_boards_repl(hall):
    port = str(hall.devices["pj-0001"].port.link)
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(sys.executable, [sys.executable, "-m", "gateway", "device", "console", port])
    out = b""
    try:
        deadline = time.monotonic() + 30
        sent = False
        while time.monotonic() < deadline and b"42" not in out.split(b"6 * 7")[-1]:
            try:
                out += os.read(fd, 4096)
            except OSError:
                break
            if b"Connected to MicroPython" in out and not sent:
                time.sleep(0.5)
                os.write(fd, b"\x03")  # Ctrl-C: the app stops, the REPL answers
                time.sleep(0.5)
                os.write(fd, b"print(6 * 7)\r")
                sent = True
        assert b"42" in out.split(b"6 * 7")[-1], out[-500:]
        os.write(fd, b"\x1d")  # Ctrl-]: mpremote leaves
    finally:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        os.close(fd)
    r = device_cmd("info", port, "--json")  # and info resets the board: the app comes back
    assert r.returncode == 0, r.stderr
    assert hall.controller.link("pj-0001", timeout=30).wait(lambda l: l.link_up, 30)


def test_flash_refuses_an_unknown_image_and_calls_esptool_for_a_supported_one(tmp_path):
    from tests.unit.firmware.test_flash import image

    noise, new = tmp_path / "noise.bin", tmp_path / "ESP32_GENERIC-v1.29.0.bin"
    noise.write_bytes(os.urandom(8192))
    new.write_bytes(image("v1.29.0"))
    master, slave = pty.openpty()  # a port with no ESP32 in download mode behind it
    port = os.ttyname(slave)
    try:
        assert "not a MicroPython ESP32 image" in one_line(device_cmd("flash", port, "--micropython", str(noise)))
        assert "checked on a real board" in one_line(device_cmd("flash", port, "--micropython", str(new)))
        r = device_cmd("flash", port, "--micropython", str(new), "--unlisted", timeout=120)
        assert r.returncode != 0 and "was not checked on a real board" in r.stdout
        assert "no ESP32 answers" in one_line(r) and "download mode" in r.stderr  # esptool tried, and said so
    finally:
        os.close(master)
        os.close(slave)
