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
