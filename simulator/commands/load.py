"""`pingjia sim load`: protocol-level virtual devices (simulator/load.py) against a real
Mosquitto and gateway, for the scale MicroPython processes cannot reach.

DEVICES devices connect and heartbeat every 60 s while together they rate at RATE
ratings/s for SECONDS. It reports the sustained rate (ratings acked per second), the
publish-to-application-ack latency percentiles, what the gateway stored, and its RSS;
the last line is JSON.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path

from gateway.data import open_db

from .. import say
from ..bench.ingest import rss_mb
from ..harness import fleet_hall
from ..load import Fleet, percentile


async def run(args) -> dict:
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="pingjia-load-"))
    say(f"registering {args.devices} devices in {home} ...")
    pairs = [(f"ld-{i:05d}", f"W{i % args.windows:02d}") for i in range(args.devices)]
    with fleet_hall(home, "load", pairs) as (cfg, creds, gateway):
        return await _rate(args, cfg, Fleet(creds, cfg.broker_host, cfg.broker_port), gateway)


async def _rate(args, cfg, fleet: Fleet, gateway) -> dict:
    try:
        connect_s = await fleet.connect()
        say(f"{args.devices} devices connected in {connect_s:.1f} s; rating at {args.rate}/s for {args.seconds} s ...")
        beats = asyncio.create_task(fleet.heartbeats(args.heartbeat, time.monotonic() + args.seconds))
        t0 = time.monotonic()
        acked0 = fleet.acked()
        lat = await fleet.paced(args.rate, args.seconds)
        took = time.monotonic() - t0
        acked = fleet.acked() - acked0
        heartbeats = await beats
        db = open_db(cfg.db_path)
        stored = db.execute("select count(*) from ratings").fetchone()[0]
        db.conn.close()
        ms = lambda p: round(percentile(lat, p) * 1000, 2) if lat else None  # noqa: E731
        return {"devices": args.devices, "connect_s": round(connect_s, 1), "rate": args.rate,
                "published": int(args.rate * args.seconds), "acked": acked, "stored": stored,
                "sustained_per_s": round(acked / took, 1), "latency_p50_ms": ms(50), "latency_p95_ms": ms(95),
                "latency_p99_ms": ms(99), "latency_max_ms": ms(100), "heartbeats": heartbeats,
                "gateway_rss_mb": rss_mb(gateway.pid)}
    finally:
        fleet.close()


def main(args) -> int:
    result = asyncio.run(run(args))
    say(f"sustained {result['sustained_per_s']}/s; ack latency p50 {result['latency_p50_ms']} ms, "
        f"p99 {result['latency_p99_ms']} ms; stored {result['stored']} of {result['published']}")
    print(json.dumps(result))
    return 0 if result["stored"] == result["published"] == result["acked"] else 1
