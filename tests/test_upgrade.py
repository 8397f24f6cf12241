"""An upgrade from the previous release (taken from git) to this one on the same home,
while real-firmware devices keep rating: CI's short version of `pingjia sim upgrade`."""

import subprocess
import sys
from pathlib import Path

from gateway.data import schema
from simulator import releases
from simulator.commands import upgrade


def test_an_upgrade_while_devices_rate_loses_and_duplicates_nothing(tmp_path, monkeypatch):
    ran_old = []
    real_upgrade = upgrade.upgrade

    def watched(hall):
        # the previous release's own modules run the hall: its gateway was started on its folder, and
        # Python started so takes the gateway package from there
        cmdline = Path(f"/proc/{hall.gateway.pid}/cmdline").read_bytes().split(b"\0")
        where = subprocess.run([sys.executable, "-c", releases.FIRST + "import gateway.ingest as m; print(m.__file__)",
                                str(hall.release)], capture_output=True, text=True, check=True).stdout.strip()
        ran_old.append(str(hall.release).encode() in cmdline and where == str(hall.release / "gateway" / "ingest.py"))
        return real_upgrade(hall)
    monkeypatch.setattr(upgrade, "upgrade", watched)
    out = upgrade.run(tmp_path, n_devices=2, ratings=24, seed=5)
    assert ran_old == [True], "the previous release's gateway did not run the hall"
    assert out["release_from"] == releases.PREVIOUS[:12] and out["schema_to"] == schema.SCHEMA_VERSION
    assert out["pressed"] >= 24 and not out["errors"], out
    assert (out["stored"], out["forwarded"], out["lost"], out["duplicates"], out["mistagged"]) == \
        (out["pressed"], out["pressed"], 0, 0, 0), out
