"""`pingjia bench ingest`: how fast and how lean the gateway's durable ingest is.

All in one run on this machine, against a Mosquitto the benchmark starts:
  baseline_per_s   raw QoS 1 throughput, load generator -> Mosquitto -> one paho subscriber
  durable_per_s    the same load through the gateway: signature-checked, tagged,
                   committed (group commit, synchronous=FULL) and application-acked
  ack_p50/p99_ms   publish-to-application-ack latency at a steady 1,000 ratings/s
  devices          protocol-level devices connected at once, heartbeating, their health
                   tracked by the gateway; gateway_rss_mb is its resident memory then
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt

from gateway.auth import account_token
from gateway.broker import Broker
from gateway.config import Config
from gateway.data import open_db
from gateway.registry import Registry

from .. import say
from ..harness import local_config, start_gateway
from ..load import Fleet, percentile


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmRSS")


class Receiver:
    """The baseline's consumer: one paho subscriber that only counts (auto PUBACK)."""

    def __init__(self, cfg: Config):
        self.count = 0
        self.last = 0.0
        self.done = threading.Event()
        self.want = 0
        self.ready = threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-baseline", clean_session=True)
        c.username_pw_set(cfg.gateway_user, cfg.gateway_password)
        c.on_connect = lambda cl, u, f, rc, p: cl.subscribe(f"pingjia/{cfg.hall}/+/rating", 1)
        c.on_subscribe = lambda *a: self.ready.set()
        c.on_message = self._message
        c.connect("127.0.0.1", cfg.local_port)
        c.loop_start()
        self.client = c
        if not self.ready.wait(10):
            raise RuntimeError("the baseline subscriber could not subscribe")

    def _message(self, client, userdata, msg):
        self.count += 1
        self.last = time.monotonic()
        if self.count >= self.want:
            self.done.set()

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


async def _baseline(fleet: Fleet, receiver: Receiver, total: int) -> float:
    for d in fleet.devices:  # the window opens on the broker's PUBACK: no gateway involved
        d.conn.on_puback = lambda pid, d=d: d.room.release()
        d.conn.on_message = None
    receiver.want = total
    t0 = time.monotonic()
    per = total // len(fleet.devices)

    async def run(d):
        for _ in range(per):
            await d.room.acquire()
            d.conn.publish(d.topic("rating"), d.rating_payload()[1], 1)

    await asyncio.gather(*(run(d) for d in fleet.devices))
    deadline = time.monotonic() + 120
    while not receiver.done.is_set():
        if time.monotonic() > deadline:  # the broker dropped some (its queue for the receiver is capped)
            raise SystemExit(f"the baseline subscriber got {receiver.count} of {total}: the broker dropped the rest")
        await asyncio.sleep(0.002)
    return per * len(fleet.devices) / (receiver.last - t0)


async def run(args) -> dict:
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="pingjia-bench-"))
    cfg = local_config(home, "bench", platform_url="", inflight_window=args.window,
                       group_wait_ms=args.group_wait_ms)
    cfg.save()
    db = open_db(cfg.db_path)
    reg = Registry(cfg, db)
    say(f"registering {args.publishers} + {args.devices} devices in {home} ...")
    tp_creds = reg.add_many([(f"tp-{i:04d}", f"W{i % 20:02d}") for i in range(args.publishers)])
    scale_creds = reg.add_many([(f"sc-{i:05d}", f"S{i % 100:02d}") for i in range(args.devices)])
    token = account_token(db, "bench", "admin", "bench ingest")
    db.conn.close()
    broker = Broker(cfg)
    broker.start()
    gateway = None
    result: dict = {}
    try:
        # 1. baseline: the broker and one paho subscriber, nothing stored
        # Each throughput is the median of --runs runs: on a shared 2-vCPU machine one run
        # can be off by a third.
        receiver = Receiver(cfg)
        base_fleet = Fleet(tp_creds, cfg.broker_host, cfg.broker_port)
        await base_fleet.connect()
        runs = []
        for _ in range(args.runs):
            receiver.count, receiver.done = 0, threading.Event()
            runs.append(round(await _baseline(base_fleet, receiver, args.ratings)))
        receiver.close()
        base_fleet.close()
        result["baseline_per_s"] = int(statistics.median(runs))
        result["baseline_runs"] = runs
        say(f"baseline: {result['baseline_per_s']}/s raw QoS 1 through Mosquitto to one paho subscriber {runs}")

        # 2. durable: the same load through the gateway
        gateway = start_gateway(cfg)
        fleet = Fleet(tp_creds, cfg.broker_host, cfg.broker_port)
        for d, b in zip(fleet.devices, base_fleet.devices, strict=True):
            d.seq = b.seq  # sequence numbers never repeat
        first_seq = sum(d.seq for d in fleet.devices)
        await fleet.connect()
        await fleet.flood(min(2000, args.ratings))  # warm up: devices become active, caches fill
        runs = [round(args.ratings / await fleet.flood(args.ratings)) for _ in range(args.runs)]
        result["durable_per_s"] = int(statistics.median(runs))
        result["durable_runs"] = runs
        result["durable_ratio"] = round(result["durable_per_s"] / result["baseline_per_s"], 3)
        result["group_commit_max"] = cfg.inflight_window
        say(f"durable: {result['durable_per_s']}/s stored and acked {runs} "
            f"({result['durable_ratio']} of baseline)")

        # 3. latency at a steady 1,000 ratings/s
        lat = await fleet.paced(args.rate, args.seconds)
        result["ack_rate_per_s"] = args.rate
        result["ack_p50_ms"] = round(percentile(lat, 50) * 1000, 2)
        result["ack_p99_ms"] = round(percentile(lat, 99) * 1000, 2)
        result["ack_samples"] = len(lat)
        say(f"latency at {args.rate}/s: p50 {result['ack_p50_ms']} ms, p99 {result['ack_p99_ms']} ms")

        # 4. many devices at once, heartbeating
        scale = Fleet(scale_creds, cfg.broker_host, cfg.broker_port)
        result["connect_s"] = round(await scale.connect(), 1)
        say(f"{args.devices} devices connected in {result['connect_s']} s; holding {args.hold} s ...")
        t_connected = time.time()
        beats = await scale.heartbeats(args.heartbeat, time.monotonic() + args.hold)
        await asyncio.sleep(2)
        api = httpx.Client(base_url=cfg.api_url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        devs = api.get("/api/v1/devices").json()
        tracked = sum(1 for x in devs if x["dev"].startswith("sc-") and x["online"] and x["health"]
                      and x["state"] == "active")
        fresh = sum(1 for x in devs if x["dev"].startswith("sc-") and not x["stale"])
        result.update(devices=args.devices, devices_online_with_health=tracked, devices_fresh=fresh,
                      heartbeats_sent=beats, gateway_rss_mb=rss_mb(gateway.pid),
                      broker_dropped_messages=api.get("/api/v1/gateway").json()["broker_dropped_messages"])
        say(f"gateway RSS {result['gateway_rss_mb']} MB with {tracked} devices online and tracked "
            f"({time.time() - t_connected:.0f} s after connecting)")
        scale.close()
        fleet.close()
        published = sum(d.seq for d in fleet.devices) - first_seq
        result["unacked"] = published - fleet.acked()  # must be 0: every rating stored and acked
    finally:
        if gateway is not None:
            gateway.terminate()
            gateway.wait(20)
        broker.stop()
    return result


def main(args) -> int:
    result = asyncio.run(run(args))
    print(json.dumps(result), flush=True)
    return 0
