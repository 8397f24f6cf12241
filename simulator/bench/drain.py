"""`pingjia bench drain`: a long platform outage, then the drain.

RATINGS ratings are stored while the provincial platform stand-in is down (they arrive
through the real ingest path from protocol-level devices). The platform then comes back
accepting RATE records/s and failing 10 % of requests; the benchmark times the drain.
It reports delivered (must equal RATINGS), duplicates_at_platform (must be 0), the drain
rate and drain_ratio = drain_per_s / RATE (target >= 0.9).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path

import httpx

from gateway.auth import account_token
from gateway.broker import Broker
from gateway.data import open_db
from gateway.province import PROFILE_DIR
from gateway.registry import Registry

from .. import say
from ..harness import free_port, local_config, start_gateway, start_platform_sim
from ..load import Fleet


async def run(args) -> dict:
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="pingjia-drain-"))
    home.mkdir(parents=True, exist_ok=True)
    # the province's rate limit, as its profile states it: here the platform's R
    profile = json.loads((PROFILE_DIR / f"{args.profile}.json").read_text())
    profile["rate_limit_per_s"] = args.rate
    (home / "profile.json").write_text(json.dumps(profile, ensure_ascii=False))
    platform_port = free_port()
    cfg = local_config(home, "drain", platform_url=f"http://127.0.0.1:{platform_port}",
                       platform_profile=str(home / "profile.json"),
                       platform_settings={"area_code": "440304", "dept_code": "11440304MB2C00001X"})
    cfg.save()
    db = open_db(cfg.db_path)
    creds = Registry(cfg, db).add_many([(f"pj-{i:04d}", f"W{i % 20:02d}") for i in range(args.publishers)])
    token = account_token(db, "bench", "admin", "bench drain")
    db.conn.close()
    broker = Broker(cfg)
    broker.start()
    procs = []
    try:
        procs.append(start_platform_sim(cfg, platform_port, "--outage-s", "86400", "--seed", "1"))
        procs.append(start_gateway(cfg))
        sim = httpx.Client(base_url=cfg.platform_url, timeout=30)
        api = httpx.Client(base_url=cfg.api_url, headers={"Authorization": f"Bearer {token}"}, timeout=60)

        say(f"platform down; storing {args.ratings} ratings through the gateway ...")
        fleet = Fleet(creds, cfg.broker_host, cfg.broker_port)
        await fleet.connect()
        t = await fleet.flood(args.ratings, timeout=1800)
        fleet.close()
        backlog = api.get("/api/v1/forwarder").json()["backlog"]
        say(f"stored in {t:.0f} s; backlog {backlog}; the platform comes back at {args.rate} records/s "
            f"with {args.error_rate:.0%} errors")

        t0 = time.monotonic()
        sim.post("/sim/faults", json={"error_rate": args.error_rate})
        last = -1
        while True:
            stats = sim.get("/sim/stats").json()
            if stats["stored"] >= args.ratings or time.monotonic() - t0 > args.timeout:
                break
            if stats["stored"] // 10000 != last // 10000 and stats["stored"]:
                say(f"  {stats['stored']} delivered after {time.monotonic() - t0:.0f} s")
            last = stats["stored"]
            await asyncio.sleep(0.2)
        seconds = time.monotonic() - t0
        records = sim.get("/sim/records").json()["records"]
        id_field = profile["id_field"]
        ids = [r[id_field] for r in records]
        ours = {f"{c['dev']}:{seq}" for c, d in zip(creds, fleet.devices, strict=True)
                for seq in range(1, d.seq + 1)}
        delivered = len(set(ids) & ours)
        fw = api.get("/api/v1/forwarder").json()
        return {"ratings": args.ratings, "delivered": delivered,
                "duplicates_at_platform": len(ids) - len(set(ids)) + len(set(ids) - ours),
                "resent_to_platform": stats.get("duplicates_received", 0),
                "drain_seconds": round(seconds, 1), "drain_per_s": round(delivered / seconds, 1),
                "rate_limit_per_s": args.rate, "drain_ratio": round(delivered / seconds / args.rate, 3),
                "platform_requests": stats.get("requests", 0),
                "platform_errors_injected": stats.get("http_503", 0), "platform_429": stats.get("http_429", 0),
                "dead_letters": fw["dead_letters"], "backlog_left": fw["backlog"]}
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(20)
        broker.stop()


def main(args) -> int:
    result = asyncio.run(run(args))
    print(json.dumps(result), flush=True)
    ok = result["delivered"] == result["ratings"] and result["duplicates_at_platform"] == 0
    return 0 if ok else 1
