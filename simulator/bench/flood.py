"""`pingjia bench flood`: one stolen device login floods the hall, and the rest of the
hall must not notice. A hall of real-firmware devices over TLS; an attacker holding
pj-0001's password publishes garbage on its rating topic as fast as one client can, at
QoS 0 and then at QoS 1, while a citizen keeps rating at pj-0002. It reports the
gateway's and the broker's memory (before, peak, after), what the flood cost and how
long the honest ratings took to be stored, against the same ratings with no flood; the
last line is JSON.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt

from gateway import protocol

from .. import say
from ..harness import Hall, wait_until
from ..load import percentile
from .ingest import rss_mb


class Flooder(threading.Thread):
    def __init__(self, hall: Hall, dev: str, qos: int, size: int, seconds: float):
        super().__init__(daemon=True)
        creds = hall.credentials[dev]
        self.topic = protocol.topic(hall.cfg.hall, dev, "rating")
        self.qos, self.payload, self.seconds = qos, b"\x00garbage" * (size // 8), seconds
        self.sent = 0
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"flood-{dev}")
        c.username_pw_set(creds["user"], creds["password"])
        c.tls_set(ca_certs=str(hall.cfg.tls_dir / "ca.crt"))
        c.max_inflight_messages_set(1000)
        c.max_queued_messages_set(5000)  # the attacker's own memory is not what we measure
        c.connect(hall.cfg.broker_host, hall.cfg.broker_port)
        c.loop_start()
        self.client = c

    def run(self) -> None:
        end = time.monotonic() + self.seconds
        while time.monotonic() < end:
            if self.client.publish(self.topic, self.payload, qos=self.qos).rc == mqtt.MQTT_ERR_SUCCESS:
                self.sent += 1
            else:
                time.sleep(0.001)  # its own queue is full
        self.client.loop_stop()
        self.client.disconnect()


def _rate_while(hall: Hall, dev: str, busy) -> list[float]:
    """Rate at `dev` until busy() is false; seconds from each confirmation to its row."""
    took = []
    while busy():
        p = hall.rate(dev)
        t0 = time.monotonic()
        wait_until(lambda: p["id"] in hall.stored_rows(), 120, interval=0.02, what=f"{p['id']} stored")
        took.append(time.monotonic() - t0)
    return took


def run(args) -> dict:
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="pingjia-flood-"))
    out: dict = {"seconds": args.seconds, "size": args.size}
    with Hall(home, devices=2, hall="flood", seed=1) as hall:
        gw, broker = hall.gateway.pid, hall.broker.proc.pid
        say("baseline: rating with no flood ...")
        n = [0]
        base = _rate_while(hall, "pj-0002", lambda: (n.__setitem__(0, n[0] + 1) or n[0]) <= args.baseline)
        out["baseline_p50_ms"] = round(percentile(base, 50) * 1000, 1)
        out["gateway_rss_before_mb"], out["broker_rss_before_mb"] = rss_mb(gw), rss_mb(broker)
        link = hall.controller.link("pj-0001")
        link.send({"wifi": False})  # the stolen login's real device is off the network
        for qos in (0, 1):
            say(f"flood at QoS {qos}: {args.size}-byte messages for {args.seconds} s ...")
            f = Flooder(hall, "pj-0001", qos, args.size, args.seconds)
            peak = {"gw": 0.0, "broker": 0.0}

            def sample():
                while f.is_alive():
                    peak["gw"], peak["broker"] = max(peak["gw"], rss_mb(gw)), max(peak["broker"], rss_mb(broker))
                    time.sleep(0.2)
            f.start()
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            took = _rate_while(hall, "pj-0002", f.is_alive)
            f.join()
            sampler.join()
            out[f"qos{qos}_sent"] = f.sent
            out[f"qos{qos}_good_ratings"] = len(took)
            out[f"qos{qos}_good_p50_ms"] = round(percentile(took, 50) * 1000, 1)
            out[f"qos{qos}_good_max_ms"] = round(max(took) * 1000, 1)
            out[f"qos{qos}_gateway_rss_peak_mb"], out[f"qos{qos}_broker_rss_peak_mb"] = peak["gw"], peak["broker"]
        time.sleep(5)
        out["gateway_rss_after_mb"], out["broker_rss_after_mb"] = rss_mb(gw), rss_mb(broker)
        state = httpx.get(f"{hall.cfg.api_url}/api/v1/gateway",
                          headers={"Authorization": f"Bearer {hall.token}"}).json()
        counts = state.get("ingest_since_start", {})
        out["rejected"] = sum(v for k, v in counts.items() if k.startswith("rejected:"))
        out["dropped_qos0_at_gateway"] = counts.get("dropped_qos0", 0)
        out["dropped_at_broker"] = state.get("broker_dropped_messages")
        peak_gw = max(out["qos0_gateway_rss_peak_mb"], out["qos1_gateway_rss_peak_mb"])
        peak_broker = max(out["qos0_broker_rss_peak_mb"], out["qos1_broker_rss_peak_mb"])
        out["gateway_rss_ratio"] = round(peak_gw / out["gateway_rss_before_mb"], 2)
        out["broker_rss_ratio"] = round(peak_broker / out["broker_rss_before_mb"], 2)
        worst = max(out["qos0_good_p50_ms"], out["qos1_good_p50_ms"])
        out["good_latency_ratio"] = round(worst / max(out["baseline_p50_ms"], 1), 2)
    return out


def main(args) -> int:
    result = run(args)
    print(json.dumps(result), flush=True)
    return 0 if result["qos0_good_ratings"] and result["qos1_good_ratings"] else 1
