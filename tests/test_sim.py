"""The simulator's scenarios, run as a user runs them."""

import json
import subprocess
import sys


def test_a_hall_day_drains_with_every_rating_stored_forwarded_and_tagged(tmp_path):
    r = subprocess.run([sys.executable, "-m", "gateway", "sim", "hall", "--windows", "2", "--minutes", "0.4",
                        "--seed", "5", "--home", str(tmp_path / "day")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout.splitlines()[-1])
    assert s["cases"] >= 10 and s["cases"] == s["pressed"] + s["walked_away"]
    assert s["rated_share"] == round(s["pressed"] / s["cases"], 4)
    assert s["stored"] == s["forwarded"] == s["pressed"] and s["lost"] == s["duplicates"] == s["mistagged"] == 0
    assert s["repeats_stored"] == 0 and s["rejections"] == {}  # second presses never left the device
    assert sum(s["levels"].values()) == s["pressed"]
    assert "share rated" in r.stderr and "press to stored" in r.stderr


def test_chaos_loses_and_duplicates_nothing(tmp_path):
    """CI's short version of `pingjia sim chaos` (the full one: 50 devices, 5,000 ratings,
    10 gateway kills)."""
    r = subprocess.run([sys.executable, "-m", "gateway", "sim", "chaos", "--devices", "6", "--ratings", "150",
                        "--kills", "3", "--seed", "3", "--home", str(tmp_path / "chaos")],
                       capture_output=True, text=True, timeout=900)
    s = json.loads(r.stdout.splitlines()[-1])
    assert r.returncode == 0, (s, r.stderr[-3000:])
    assert s["pressed"] >= 150 and s["gateway_kills"] >= 3
    assert min(s["broker_restarts"], s["power_cuts"], s["link_cuts"], s["platform_outages"]) >= 1
    assert s["stored"] == s["forwarded"] == s["pressed"]
    assert s["lost"] == s["duplicates"] == s["mistagged"] == 0
