"""The `pingjia gateway` commands a hall's admin runs, against a real Mosquitto."""

import json
import subprocess
import sys
import time

import paho.mqtt.client as mqtt

from gateway.broker import Broker
from gateway.config import Config
from simulator.hall import free_port


def pingjia(*args):
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=60)


def connect(port, user, password):
    result = {}
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{user}-{time.monotonic_ns()}")
    c.username_pw_set(user, password)
    c.on_connect = lambda cl, u, f, rc, p: result.setdefault("rc", rc)
    c.connect("127.0.0.1", port)
    c.loop_start()
    deadline = time.monotonic() + 5
    while "rc" not in result and time.monotonic() < deadline:
        time.sleep(0.02)
    c.loop_stop()
    c.disconnect()
    return result.get("rc")


def test_init_add_device_and_the_broker_admits_exactly_that_device(tmp_path):
    home = tmp_path / "hall"
    port = free_port()
    r = pingjia("gateway", "init", "--home", str(home), "--hall", "h1", "--broker-port", str(port))
    assert r.returncode == 0, r.stderr
    assert oct((home / "gateway.json").stat().st_mode & 0o777) == "0o600"
    broker = Broker(Config.load(home))
    broker.start()
    try:
        r = pingjia("gateway", "device", "add", "--home", str(home), "pj-0007", "--window", "W07")
        assert r.returncode == 0, r.stderr
        creds = json.loads(r.stdout)
        assert creds["dev"] == "pj-0007" and len(creds["key"]) == 64 and creds["broker"] == ["127.0.0.1", port]
        time.sleep(0.3)  # the broker re-reads its password file on SIGHUP
        assert connect(port, "pj-0007", creds["password"]) == 0
        assert connect(port, "pj-0007", "wrong").is_failure
        assert connect(port, "pj-0008", creds["password"]).is_failure

        again = pingjia("gateway", "device", "add", "--home", str(home), "pj-0007", "--window", "W01")
        assert again.returncode == 2 and "already registered" in again.stderr
        bad = pingjia("gateway", "device", "add", "--home", str(home), "pj/07", "--window", "W01")
        assert bad.returncode == 2 and "bad device ID" in bad.stderr
        for f in (home / "broker").iterdir():  # the secrets are shown once and kept nowhere in clear
            text = f.read_bytes().decode(errors="replace")
            assert creds["key"] not in text and creds["password"] not in text, f.name
    finally:
        broker.stop()


def test_commands_without_a_home_say_what_to_do(tmp_path):
    r = pingjia("gateway", "run", "--home", str(tmp_path / "nowhere"))
    assert r.returncode != 0 and "pingjia gateway init" in r.stderr
