"""`pingjia sim upgrade`: a hall upgraded from the previous release to this one while its
real-firmware devices keep rating. The previous release (releases.PREVIOUS, from git)
makes the hall's settings and database and runs it; half-way, the gateway is stopped as
a service manager stops it, the broker restarted with this release's configuration, and
this release's gateway started on the same home (migrating its database). Every press
must be stored and forwarded once, with its right window, staff ID and case."""

from __future__ import annotations

import json
import signal
import tempfile
import threading
import time
from pathlib import Path

from gateway.data import devices, open_readonly

from .. import releases, say
from ..harness import Hall, wait_until


def schema_of(hall: Hall) -> int:
    db = open_readonly(hall.cfg.db_path)
    try:
        return db.conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.conn.close()


def upgrade(hall: Hall) -> float:
    """Stop the running release, restart the broker, start this one; returns the seconds
    the hall's gateway was away."""
    t0 = time.monotonic()
    hall.gateway.send_signal(signal.SIGTERM)
    hall.gateway.wait(30)
    hall.broker.stop()
    db = open_readonly(hall.cfg.db_path)
    hall.broker.write_config(devices.password_hashes(db))  # as this release's `gateway broker` does at start
    db.conn.close()
    hall.broker.start()
    hall.release = None
    hall.start_gateway()
    return time.monotonic() - t0


def run(home: Path, n_devices: int, ratings: int, seed: int, ref: str = releases.PREVIOUS) -> dict:
    tree = releases.checkout(ref, home / "previous")
    hall = Hall(home / "hall", devices=n_devices, hall="upgrade", seed=seed, release=tree)
    stop = threading.Event()
    pressed: list[dict] = []
    errors: list[str] = []
    try:
        hall.start()
        say(f"release {ref[:12]} runs the hall; {n_devices} devices rating ...")
        threads = hall.keep_rating(stop, pressed, errors)
        wait_until(lambda: len(pressed) >= ratings // 2, 30 + ratings, interval=0.2, what="ratings before the upgrade")
        before = schema_of(hall)
        away = upgrade(hall)
        say(f"upgraded after {len(pressed)} ratings: gateway away {away:.1f} s, schema {before} -> {schema_of(hall)}")
        wait_until(lambda: len(pressed) >= ratings, 30 + ratings, interval=0.2, what="ratings after the upgrade")
        stop.set()
        for t in threads:
            t.join(60)
        hall.wait_drained(pressed)
        summary = hall.summary(pressed)
        return {**summary, "errors": errors[:5], "release_from": ref[:12], "schema_from": before,
                "schema_to": schema_of(hall), "gateway_away_s": round(away, 1)}
    finally:
        stop.set()
        hall.stop()


def main(args) -> int:
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="pingjia-upgrade-"))
    out = run(home, args.devices, args.ratings, args.seed, args.release or releases.PREVIOUS)
    print(json.dumps(out), flush=True)
    ok = out["lost"] == 0 and out["duplicates"] == 0 and out["mistagged"] == 0 and not out["errors"] \
        and out["forwarded"] == out["pressed"]
    return 0 if ok else 1
