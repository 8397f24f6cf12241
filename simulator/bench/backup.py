"""`pingjia bench backup`: a backup of a gateway holding a million ratings (by default),
taken while ingest runs flat out, and what it costs the ingest.

The ratings are written straight into the gateway's database (bench console's fill), then
the broker and the gateway start and protocol-level devices publish as fast as the acks
allow. baseline_per_s is that rate with no backup running; during_backup_per_s the rate
while `pingjia gateway backup` runs in its own process, as the nightly timer runs it. The
backup is then checked as a restore checks it.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from gateway import backup

from .. import say
from ..harness import fleet_hall
from ..load import Fleet
from .console import fill

BURST = 2000  # ratings per flood while the backup runs: its rate is measured in these


async def _rate_while(fleet: Fleet, running) -> tuple[float, int]:
    """Flood in bursts while running(); returns ratings/s over them, and how many."""
    n, t0 = 0, time.monotonic()
    while running():
        await fleet.flood(BURST)
        n += BURST
    return n / (time.monotonic() - t0), n


async def run(args) -> dict:
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="pingjia-bench-backup-"))
    say(f"writing {args.ratings:,} ratings into {home} ...")
    filled: dict = {}

    def prepare(cfg, db):
        filled.update(fill(db, args.ratings, 100, 365, cfg.utc_offset_s, random.Random(args.seed)))
        say(f"written in {filled['fill_s']} s, summaries in {filled['summaries_s']} s; starting the gateway ...")

    pairs = [(f"tp-{i:03d}", f"W{i % 20:02d}") for i in range(args.publishers)]
    with fleet_hall(home, "bench", pairs, prepare) as (cfg, creds, _gateway):
        result = await _measure(args, home, cfg, creds)
    return {"ratings": args.ratings, **result, "fill_s": filled["fill_s"]}


async def _measure(args, home: Path, cfg, creds: list[dict]) -> dict:
    result: dict = {}
    fleet = Fleet(creds, cfg.broker_host, cfg.broker_port)
    await fleet.connect()
    await fleet.flood(BURST)  # warm up: devices become active, caches fill
    base = [args.baseline / await fleet.flood(args.baseline) for _ in range(2)]
    result["baseline_per_s"] = round(sum(base) / len(base))
    say(f"ingest without a backup: {result['baseline_per_s']}/s")
    out = home / "bench.tar.gz"
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "gateway", "backup", "--home", str(home),
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rate, during = await _rate_while(fleet, lambda: proc.poll() is None)
    stdout, stderr = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"the backup failed: {stderr}")
    made = json.loads(stdout)
    result.update(backup_s=round(time.monotonic() - t0, 1), backup_mb=round(made["bytes"] / 1e6, 1),
                  ratings_in_backup=made["ratings"], during_backup_per_s=round(rate), rated_during=during,
                  during_ratio=round(rate / result["baseline_per_s"], 3))
    say(f"backup: {made['ratings']:,} ratings, {result['backup_mb']} MB in {result['backup_s']} s; "
        f"ingest meanwhile {result['during_backup_per_s']}/s ({result['during_ratio']} of baseline)")
    published = sum(d.seq for d in fleet.devices)
    result["unacked"] = published - fleet.acked()
    fleet.close()
    t1 = time.monotonic()
    with tarfile.open(out) as tar:  # checked as a restore checks it
        manifest = backup.read_manifest(tar)
        tar.extract("gateway.db", home / "check", filter="data")
    backup.check_db(home / "check" / "gateway.db")
    result["db_sha256_ok"] = backup.sha256(home / "check" / "gateway.db") == manifest["files"]["gateway.db"]
    result["check_s"] = round(time.monotonic() - t1, 1)
    return result


def main(args) -> int:
    print(json.dumps(asyncio.run(run(args))), flush=True)
    return 0
