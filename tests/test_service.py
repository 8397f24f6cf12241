"""The hall's box as systemd runs it: `install-service` makes the user and the units, and
the units' own commands, run as that unprivileged user, make a working hall (a device
rates through them); the doctor finds what is wrong and says what to do; the nightly
backup's command writes a backup only that user reads. systemd itself is not running
here: systemd-analyze checks the units."""

import json
import os
import pwd
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gateway.cli import LOG_FILE_BYTES
from gateway.config import Config
from simulator.harness import free_port, let_broker_through, wait_until
from simulator.virtual_device import LEVEL_BUTTON, Controller, VirtualDevice

USER = "pingjia-ci"
PINGJIA = [sys.executable, "-m", "gateway"]


def pingjia(*args, user=None, check=True):
    cmd = [*PINGJIA, *args]
    if user:
        cmd = ["runuser", "-u", user, "--", *cmd]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if check:
        assert p.returncode == 0, p.stdout + p.stderr
    return p


def exec_start(unit: str) -> list[str]:
    line = next(ln for ln in unit.splitlines() if ln.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))


@pytest.fixture
def box(tmp_path):
    """An initialised hall home, its units installed into tmp_path/units for USER."""
    home = tmp_path / "srv" / "hall"
    let_broker_through(tmp_path / "srv")
    # the install (the venv, its interpreter, the source) as a hall's install is: reachable by the user
    for path in (Path(sys.executable).parent, Path(os.path.realpath(sys.executable)).parent,
                 Path(__file__).resolve().parent.parent):
        let_broker_through(path)
    pingjia("gateway", "init", "--home", str(home), "--hall", "svc", "--broker-port", str(free_port()),
            "--local-port", str(free_port()), "--api-port", str(free_port()), "--platform-url",
            f"http://127.0.0.1:{free_port()}")
    p = pingjia("gateway", "install-service", "--home", str(home), "--user", USER,
                "--unit-dir", str(tmp_path / "units"))
    assert "systemctl daemon-reload && systemctl enable --now pingjia-broker.service pingjia-gateway.service " \
           "pingjia-backup.timer" in p.stderr
    procs = []
    yield home, tmp_path / "units", procs
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def test_units_verify_and_their_commands_run_a_hall_as_an_unprivileged_user(box, tmp_path):
    home, units, procs = box
    uid = pwd.getpwnam(USER).pw_uid
    assert uid != 0 and home.stat().st_uid == uid and home.stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_uid == uid for p in home.rglob("*"))
    names = sorted(p.name for p in units.iterdir())
    assert names == ["pingjia-backup.service", "pingjia-backup.timer", "pingjia-broker.service",
                     "pingjia-gateway.service"]
    v = subprocess.run(["systemd-analyze", "verify", *map(str, sorted(units.iterdir()))], capture_output=True,
                       text=True)
    assert v.returncode == 0 and not v.stderr.strip() and not v.stdout.strip(), v.stdout + v.stderr
    text = {n: (units / n).read_text() for n in names}
    for n in ("pingjia-broker.service", "pingjia-gateway.service", "pingjia-backup.service"):
        for line in (f"User={USER}", "NoNewPrivileges=yes", "ProtectSystem=strict", f"ReadWritePaths={home}",
                     "CapabilityBoundingSet=", "UMask=0077"):
            assert line in text[n].splitlines(), (n, line)
    gw = text["pingjia-gateway.service"]
    assert "After=network-online.target time-sync.target pingjia-broker.service" in gw and "Restart=on-failure" in gw
    assert "OnCalendar=" in text["pingjia-backup.timer"] and "Persistent=true" in text["pingjia-backup.timer"]

    # the units' commands, as the user systemd would run them as
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    for name in ("pingjia-broker.service", "pingjia-gateway.service"):
        cmd = exec_start(text[name])
        assert Path(cmd[0]).name == "pingjia"
        log = open(tmp_path / f"{name}.log", "wb")
        procs.append(subprocess.Popen(["runuser", "-u", USER, "--", *cmd], stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True, env=env))
        time.sleep(1)
    cfg = Config.load(home)
    wait_until(lambda: httpx.get(f"{cfg.api_url}/api/v1/health", timeout=1).json()["broker_connected"], 40,
               what="the gateway, run as its user")
    ps = subprocess.run(["ps", "-ww", "-o", "user=,args=", "-u", USER], capture_output=True, text=True).stdout
    assert "mosquitto" in ps and "gateway run" in ps, ps

    # a device registered through the running gateway (it reloads the broker it shares the user with) rates
    creds = json.loads(pingjia("gateway", "device", "add", "pj-0001", "--window", "W01", "--home", str(home),
                               user=USER).stdout)
    controller = Controller()
    dev = VirtualDevice(tmp_path / "flash" / "pj-0001", {**creds, "ctl": controller.address})
    try:
        dev.start()
        link = controller.link("pj-0001", timeout=20)
        assert link.wait(lambda l: l.link_up, 20), "the device never connected to the user's broker"
        assert link.tap(LEVEL_BUTTON["satisfied"], lambda l: l.confirmed, 10)
        seq = link.confirmed[0]["seq"]
        assert link.wait(lambda l: seq in l.acked, 20), "the rating was never stored and acked"

        # the nightly backup's command, as the user: a file only the user reads
        pingjia(*exec_start(text["pingjia-backup.service"])[1:], user=USER)
        (kept,) = (home / "backups").glob("pingjia-svc-*.tar.gz")
        assert kept.stat().st_uid == uid and kept.stat().st_mode & 0o777 == 0o600

        # the doctor: what is wrong is named with its fix, and `--json` says the same
        report = json.loads(pingjia("gateway", "doctor", "--home", str(home), "--json", user=USER,
                                    check=False).stdout)
        status = {(f["check"], f["status"]) for f in report["findings"]}
        assert {("files", "ok"), ("gateway", "ok"), ("broker", "ok"), ("certificates", "ok"), ("disk", "ok"),
                ("backups", "ok"), ("devices", "ok")} <= status, report
        assert ("platform", "fail") in status and report["ok"] is False  # the platform's port is closed

        dev.stop()
        cfg.heartbeat_s = 1  # as the doctor reads the settings: the stopped device's heartbeat is 3 s late
        cfg.save()
        time.sleep(3 * cfg.heartbeat_s + 1)
        (home / "gateway.json").chmod(0o644)
        p = pingjia("gateway", "doctor", "--home", str(home), user=USER, check=False)
        assert p.returncode == 1
        assert "FAIL  files" in p.stdout and "gateway.json" in p.stdout and "chmod 600" in p.stdout, p.stdout
        assert "WARN  devices" in p.stdout and "pj-0001" in p.stdout, p.stdout
    finally:
        dev.stop()
        controller.close()


def test_the_brokers_log_rolls_over_and_the_broker_writes_the_new_one(hall_factory):
    hall = hall_factory(devices=1)
    log = hall.broker.dir / "mosquitto.log"
    with open(log, "ab") as f:  # as if it had run for months
        f.write(b"x" * (LOG_FILE_BYTES + 1))
    wait_until(lambda: (hall.broker.dir / "mosquitto.log.1").exists(), 30, what="the broker's log to roll over")
    assert (hall.broker.dir / "mosquitto.log.1").stat().st_size > LOG_FILE_BYTES
    hall.power_cycle("pj-0001")  # the broker logs the device's new connection: in the new file
    wait_until(lambda: log.exists() and "as pj-0001" in log.read_text(), 20, what="the broker to write its new log")
    assert "as pj-0001" not in (hall.broker.dir / "mosquitto.log.1").read_text()[-2000:]
