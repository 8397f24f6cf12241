"""Protocol-level virtual devices: thousands of evaluators in one asyncio loop, each with
its own broker login and signing key, speaking protocol v1 (signed ratings, application
acks, status and heartbeats). For the scale that MicroPython processes cannot reach.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import ssl
import time
from collections.abc import Sequence

from gateway import protocol

from .mqttlite import MQTTLite


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        raise ValueError("no values to take a percentile of")
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


class LoadDevice:
    def __init__(self, creds: dict, window: int = 20):
        self.dev = creds["dev"]
        self.hall = creds["hall"]
        self.creds = creds
        self.key = bytes.fromhex(creds["key"])
        self.seq = 0
        self.boot = 1
        self.started = time.monotonic()
        self.sent: dict[int, float] = {}  # seq -> monotonic time published
        self.room = asyncio.Semaphore(window)  # ratings awaiting their ack at once
        self.conn: MQTTLite | None = None
        self.latencies: list[float] | None = None  # filled when measuring
        self.acked = 0

    def topic(self, leaf: str) -> str:
        return protocol.topic(self.hall, self.dev, leaf)

    async def connect(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> None:
        self.conn = await MQTTLite.connect(
            host, port, tls=tls, client_id=self.dev, user=self.creds["user"], password=self.creds["password"],
            keepalive=60,
            will=(self.topic("status"), b'{"v":1,"state":"offline"}', 1, True), on_message=self._message)
        self.conn.subscribe([(self.topic("ack"), 0), (self.topic("session"), 1)])
        self.conn.publish(self.topic("status"), b'{"v":1,"state":"online","fw":"load"}', 1, retain=True)
        self.heartbeat()

    def heartbeat(self) -> None:
        self.conn.publish(self.topic("health"), protocol.encode({
            "v": 1, "dev": self.dev, "fw": "load", "model": "five-button", "ts": int(time.time() * 1000),
            "tsync": True, "up": int((time.monotonic() - self.started) * 1000), "boot": self.boot,
            "reset": "power_on", "rssi": -55, "heap_free": 60000, "heap_block": 30000,
            "outbox": len(self.sent), "oldest_s": 0, "reconnects": 0, "corrupt": 0, "held": 0}), qos=0)

    def rating_payload(self) -> tuple[int, bytes]:
        self.seq += 1
        level = random.choice(("very_satisfied", "satisfied", "basically_satisfied"))
        msg = protocol.signed(self.key, "rating", {
            "dev": self.dev, "seq": self.seq, "level": level, "reason": [], "case": "",
            "ts": int(time.time() * 1000), "tsync": True, "boot": self.boot,
            "up": int((time.monotonic() - self.started) * 1000), "fw": "load"})
        return self.seq, protocol.encode(msg)

    async def rate(self) -> None:
        """Publish one rating once there is room in the ack window."""
        await self.room.acquire()
        seq, payload = self.rating_payload()
        self.sent[seq] = time.monotonic()
        self.conn.publish(self.topic("rating"), payload, 1)

    def _message(self, topic: str, payload: bytes) -> None:
        if not topic.endswith("/ack") or not payload:
            return
        ack = json.loads(payload)
        t = self.sent.pop(ack.get("seq"), None)
        if t is None:
            return
        self.acked += 1
        if self.latencies is not None:
            self.latencies.append(time.monotonic() - t)
        self.room.release()


class Fleet:
    def __init__(self, creds: list[dict], host: str, port: int, window: int = 20):
        self.devices = [LoadDevice(c, window) for c in creds]
        self.host, self.port = host, port
        ca = creds[0].get("ca") if creds else None  # one hall, one CA
        self.tls = ssl.create_default_context(cadata=base64.b64decode(ca)) if ca else None

    async def connect(self, concurrency: int = 100) -> float:
        """Connect every device, a bounded number at a time (the broker's listen backlog
        is 100: a storm costs SYN retries). Returns the seconds it took."""
        t0 = time.monotonic()
        gate = asyncio.Semaphore(concurrency)

        async def one(d):
            async with gate:
                for attempt in range(5):
                    try:
                        await d.connect(self.host, self.port, self.tls)
                        return
                    except (TimeoutError, OSError):
                        await asyncio.sleep(0.2 * (attempt + 1) * random.random())
                raise ConnectionError(f"{d.dev} could not connect")

        await asyncio.gather(*(one(d) for d in self.devices))
        return time.monotonic() - t0

    async def heartbeats(self, interval: float, until: float) -> int:
        """Each device heartbeats every `interval` seconds, spread evenly, until `until`."""
        sent = 0
        step = interval / max(1, len(self.devices))
        i = 0
        while time.monotonic() < until:
            self.devices[i % len(self.devices)].heartbeat()
            sent += 1
            i += 1
            await asyncio.sleep(step)
        return sent

    def acked(self) -> int:
        return sum(d.acked for d in self.devices)

    async def flood(self, total: int, timeout: float = 300.0) -> float:
        """Publish `total` ratings as fast as the ack windows allow; returns seconds until
        the last application ack."""
        per = [total // len(self.devices) + (i < total % len(self.devices)) for i in range(len(self.devices))]
        start_acked = self.acked()
        t0 = time.monotonic()

        async def run(d, n):
            for _ in range(n):
                await d.rate()

        await asyncio.wait_for(asyncio.gather(*(run(d, n) for d, n in zip(self.devices, per, strict=True))), timeout)
        while self.acked() - start_acked < total:
            if time.monotonic() - t0 > timeout:
                raise TimeoutError(f"only {self.acked() - start_acked} of {total} ratings acked")
            await asyncio.sleep(0.001)
        return time.monotonic() - t0

    async def paced(self, rate: float, seconds: float) -> list[float]:
        """Publish at `rate` ratings/s for `seconds`; returns the publish-to-ack latencies."""
        for d in self.devices:
            d.latencies = []
        start_acked = self.acked()
        tick = 0.005
        total = int(rate * seconds)
        t0 = time.monotonic()
        n = 0
        while n < total:
            due = min(total, int((time.monotonic() - t0) * rate) + 1)
            while n < due:
                await self.devices[n % len(self.devices)].rate()
                n += 1
            await asyncio.sleep(tick)
        deadline = time.monotonic() + 30
        while self.acked() - start_acked < total and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        lat = [x for d in self.devices for x in d.latencies]
        for d in self.devices:
            d.latencies = None
        return lat

    def close(self) -> None:
        for d in self.devices:
            if d.conn:
                d.conn.disconnect()
