"""The `pingjia gateway` commands a hall's admin runs: a real broker and gateway, each
started by its own command, and the CLI talking to the gateway's API."""

import json
import signal
import ssl
import subprocess
import sys
import time

import httpx
import paho.mqtt.client as mqtt
import pytest

from simulator.harness import free_port, let_broker_through, wait_until


def pingjia(*args):
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=60)


def connect(home, port, user, password):
    """A device's login on the devices' listener, checking the broker against the hall CA."""
    result = {}
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{user}-{time.monotonic_ns()}")
    c.username_pw_set(user, password)
    c.tls_set_context(ssl.create_default_context(cafile=str(home / "tls" / "ca.crt")))
    c.on_connect = lambda cl, u, f, rc, p: result.setdefault("rc", rc)
    c.connect("127.0.0.1", port)
    c.loop_start()
    wait_until(lambda: "rc" in result, 5, what="the CONNACK")
    c.loop_stop()
    c.disconnect()
    return result.get("rc")


@pytest.fixture
def hall_home(tmp_path):
    home = tmp_path / "hall"
    let_broker_through(home)
    bport, aport = free_port(), free_port()
    r = pingjia("gateway", "init", "--home", str(home), "--hall", "h1", "--broker-port", str(bport),
                "--local-port", str(free_port()), "--api-port", str(aport))
    assert r.returncode == 0, r.stderr
    procs = [subprocess.Popen([sys.executable, "-m", "gateway", "gateway", cmd, "--home", str(home)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for cmd in ("broker", "run")]
    try:
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{aport}/api/v1/health").json()["broker_connected"], 20,
                   what="the gateway")
        yield home, bport
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGINT)
            p.wait(10)


def test_init_add_device_and_the_broker_admits_exactly_that_device(hall_home, tmp_path):
    home, port = hall_home
    assert oct((home / "gateway.json").stat().st_mode & 0o777) == "0o600"
    r = pingjia("gateway", "device", "add", "--home", str(home), "pj-0007", "--window", "W07")
    assert r.returncode == 0, r.stderr
    creds = json.loads(r.stdout)
    assert creds["dev"] == "pj-0007" and len(creds["key"]) == 64 and creds["broker"] == ["127.0.0.1", port]
    assert "shown only now" in r.stderr
    assert wait_until(lambda: connect(home, port, "pj-0007", creds["password"]) == 0, 5, what="the broker to reload")
    assert connect(home, port, "pj-0007", "wrong").is_failure
    assert connect(home, port, "pj-0008", creds["password"]).is_failure

    out = tmp_path / "flash" / "config.json"
    r = pingjia("gateway", "device", "add", "--home", str(home), "pj-0008", "--window", "W08", "--out", str(out))
    assert r.returncode == 0 and json.loads(out.read_text())["user"] == "pj-0008"

    listed = pingjia("gateway", "device", "list", "--home", str(home)).stdout.splitlines()
    assert [line.split()[:3] for line in listed] == [["pj-0007", "W07", "provisioned"],
                                                     ["pj-0008", "W08", "provisioned"]]
    moved = json.loads(pingjia("gateway", "device", "move", "--home", str(home), "pj-0007", "--window", "W01").stdout)
    assert moved["window"] == "W01" and "key" not in moved

    again = pingjia("gateway", "device", "add", "--home", str(home), "pj-0007", "--window", "W01")
    assert again.returncode != 0 and "already registered" in again.stderr
    bad = pingjia("gateway", "device", "add", "--home", str(home), "pj/07", "--window", "W01")
    assert bad.returncode != 0 and "error 422" in bad.stderr

    rotated = json.loads(pingjia("gateway", "device", "rotate", "--home", str(home), "pj-0007").stdout)
    assert wait_until(lambda: connect(home, port, "pj-0007", creds["password"]).is_failure, 5,
                      what="the old password to die")
    assert connect(home, port, "pj-0007", rotated["password"]) == 0
    assert pingjia("gateway", "device", "retire", "--home", str(home), "pj-0007").returncode == 0
    assert wait_until(lambda: connect(home, port, "pj-0007", rotated["password"]).is_failure, 5, what="the lock-out")

    for f in (home / "broker").iterdir():  # the secrets are shown once and kept nowhere in clear
        text = f.read_bytes().decode(errors="replace")
        assert creds["key"] not in text and creds["password"] not in text, f.name


def test_sessions_and_cases_from_the_command_line(hall_home):
    home, _ = hall_home
    assert pingjia("gateway", "sign-in", "--home", str(home), "W01", "S1001", "张伟").returncode == 0
    r = pingjia("gateway", "case", "--home", str(home), "SN-1", "--window", "W01",
                "--item", "A1", "营业执照变更登记", "--item", "A2", "税务登记变更")
    assert r.returncode == 0, r.stderr
    case = json.loads(r.stdout)
    assert (case["staff_id"], case["staff_name"], case["item_name"]) == ("S1001", "张伟", "营业执照变更登记")
    assert pingjia("gateway", "sign-out", "--home", str(home), "W01").returncode == 0
    r = pingjia("gateway", "case", "--home", str(home), "SN-2", "--window", "W01", "--item", "A1", "x")
    assert r.returncode != 0 and "no staff signed in" in r.stderr


def test_commands_without_a_home_or_a_gateway_say_what_to_do(tmp_path):
    r = pingjia("gateway", "run", "--home", str(tmp_path / "nowhere"))
    assert r.returncode != 0 and "pingjia gateway init" in r.stderr
    home = tmp_path / "h"
    let_broker_through(home)
    pingjia("gateway", "init", "--home", str(home), "--api-port", str(free_port()))
    r = pingjia("gateway", "device", "list", "--home", str(home))
    assert r.returncode != 0 and "not running" in r.stderr and "pingjia gateway run" in r.stderr


def test_sim_load_rates_through_a_real_gateway_and_every_rating_is_stored(tmp_path):
    r = subprocess.run([sys.executable, "-m", "gateway", "sim", "load", "--devices", "300", "--rate", "200",
                        "--seconds", "3", "--home", str(tmp_path / "load")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.splitlines()[-1])
    assert result["devices"] == 300 and result["published"] == 600
    assert result["acked"] == result["stored"] == 600
    assert 0 < result["latency_p50_ms"] <= result["latency_p99_ms"] <= result["latency_max_ms"]
    assert result["sustained_per_s"] > 100


def test_accounts_from_the_command_line_and_the_audit_log_says_who(hall_home):
    home, _ = hall_home
    assert oct((home / "local.token").stat().st_mode & 0o777) == "0o600"

    def run(*args, stdin=None):
        return subprocess.run([sys.executable, "-m", "gateway", "gateway", *args, "--home", str(home)],
                              capture_output=True, text=True, timeout=60, input=stdin)

    r = run("user", "add", "li.na", "--role", "supervisor", "--window", "W01", "--window", "W02",
            "--password-stdin", stdin="short\n")
    assert r.returncode == 1 and "at least 10 characters" in r.stderr
    r = run("user", "add", "li.na", "--role", "supervisor", "--window", "W01", "--window", "W02",
            "--password-stdin", stdin="a long enough secret\n")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["windows"] == ["W01", "W02"] and "secret" not in r.stdout
    assert run("user", "add", "queue", "--role", "business").returncode == 0
    r = run("user", "token", "queue", "--label", "queue-system")
    token = r.stdout.strip()
    assert r.returncode == 0 and token.startswith("pj_") and "revoke" in r.stderr
    api = f"http://127.0.0.1:{json.loads((home / 'gateway.json').read_text())['api_port']}"
    biz = {"Authorization": f"Bearer {token}"}
    assert httpx.post(f"{api}/api/v1/windows/W01/sign-in", json={"staff_id": "S1", "staff_name": "张伟"},
                      headers=biz).status_code == 200
    assert httpx.get(f"{api}/api/v1/ratings", headers=biz).status_code == 403
    listed = run("user", "list").stdout
    assert "li.na" in listed and "supervisor" in listed and "W01,W02" in listed
    login = httpx.post(f"{api}/api/v1/login", json={"user": "li.na", "password": "a long enough secret"})
    assert login.status_code == 200
    assert run("user", "disable", "li.na").returncode == 0
    assert httpx.get(f"{api}/api/v1/ratings", headers={"Authorization": f"Bearer {login.json()['token']}"}
                     ).status_code == 401  # a disabled account's login ends at once
    tokens = json.loads(run("token", "list").stdout)
    tid = next(t["id"] for t in tokens if t["user"] == "queue")
    assert token not in json.dumps(tokens) and run("token", "revoke", tid).returncode == 0
    assert httpx.post(f"{api}/api/v1/windows/W01/sign-out", headers=biz).status_code == 401
    audit = run("audit").stdout.splitlines()
    assert [line.split()[2] for line in audit[-5:]] == ["user.add", "user.add", "token.add", "user.disable",
                                                        "token.revoke"]
    assert all(line.split()[1] == "local" for line in audit[-5:])
