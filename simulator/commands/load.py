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

from gateway.broker import Broker
from gateway.data import open_db
from gateway.registry import Registry

from .. import say
from ..bench.ingest import rss_mb
from ..harness import local_config, start_gateway
from ..load import Fleet, percentile


async def run(args) -> dict:
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="pingjia-load-"))
    cfg = local_config(home, "load", platform_url="")
    cfg.save()
    db = open_db(cfg.db_path)
    say(f"registering {args.devices} devices in {home} ...")
    creds = Registry(cfg, db).add_many([(f"ld-{i:05d}", f"W{i % args.windows:02d}") for i in range(args.devices)])
    db.conn.close()
    broker = Broker(cfg)
    broker.start()
    gateway = start_gateway(cfg)
    fleet = Fleet(creds, cfg.broker_host, cfg.broker_port)
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
        gateway.terminate()
        gateway.wait(10)
        broker.stop()


def main(args) -> int:
    result = asyncio.run(run(args))
    say(f"sustained {result['sustained_per_s']}/s; ack latency p50 {result['latency_p50_ms']} ms, "
        f"p99 {result['latency_p99_ms']} ms; stored {result['stored']} of {result['published']}")
    print(json.dumps(result))
    return 0 if result["stored"] == result["published"] == result["acked"] else 1
