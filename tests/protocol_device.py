"""A protocol-level device for tests: paho with a device's own credentials, signing real
messages with its own key. It exercises the gateway through the real broker where a test
needs exact control of what a device says (timestamps, clocks, repeats)."""

from __future__ import annotations

import base64
import json
import queue
import ssl
import time

import paho.mqtt.client as mqtt

from gateway import protocol
from gateway.config import Config
from simulator.harness import wait_until


def tls_context(ca_b64: str) -> ssl.SSLContext:
    """What a device checks the broker with: the hall CA from its config (base64 DER)."""
    return ssl.create_default_context(cadata=base64.b64decode(ca_b64))


def login(cfg: Config, user: str, password: str, client_id: str = "") -> tuple[mqtt.Client, str, int]:
    """A paho client for a login, and where it connects: the gateway's login to the
    loopback listener, any other to the devices' TLS listener."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"t-{user}-{time.monotonic_ns()}")
    c.username_pw_set(user, password)
    if user == cfg.gateway_user:
        return c, "127.0.0.1", cfg.local_port
    if cfg.broker_tls:
        c.tls_set_context(ssl.create_default_context(cafile=str(cfg.tls_dir / "ca.crt")))
    return c, cfg.broker_host, cfg.broker_port


class ProtocolDevice:
    def __init__(self, creds: dict, host: str, port: int):
        self.dev = creds["dev"]
        self.hall = creds["hall"]
        self.key = bytes.fromhex(creds["key"])
        self.acks: queue.Queue = queue.Queue()
        self.sessions: queue.Queue = queue.Queue()
        self.seq = 0
        self.connected = None
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.dev)
        c.username_pw_set(creds["user"], creds["password"])
        if creds.get("ca"):
            c.tls_set_context(tls_context(creds["ca"]))
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.connect(host, port)
        c.loop_start()
        self.client = c
        wait_until(lambda: self.connected is not None, 5, what=f"{self.dev}'s CONNACK")
        assert self.connected and not self.connected.is_failure, f"{self.dev} could not connect: {self.connected}"
        time.sleep(0.1)  # let the subscriptions settle

    def _on_connect(self, client, userdata, flags, rc, props):
        self.connected = rc
        if not rc.is_failure:
            client.subscribe([(self.topic("ack"), 0), (self.topic("session"), 1), (self.topic("time"), 0)])

    def _on_message(self, client, userdata, msg):
        if msg.payload:
            q = {"ack": self.acks, "session": self.sessions}.get(msg.topic.rsplit("/", 1)[-1])
            if q is not None:
                q.put(json.loads(msg.payload))

    def topic(self, leaf: str) -> str:
        return protocol.topic(self.hall, self.dev, leaf)

    def rating(self, level="satisfied", reason=(), case="", ts=None, tsync=True, boot=1, up=10_000,
               parts: dict | None = None) -> dict:
        """A signed rating; with `parts`, of version 2 (itemised)."""
        self.seq += 1
        msg = {"dev": self.dev, "seq": self.seq, "level": level, "reason": list(reason), "case": case,
               "ts": time.time_ns() // 1_000_000 if ts is None else ts, "tsync": tsync, "boot": boot, "up": up,
               "fw": "test"}
        if parts is not None:
            msg = {"v": 2, **msg, "parts": parts}
        return protocol.signed(self.key, "rating", msg)

    def send(self, msg: dict, leaf: str = "rating", timeout: float = 10.0) -> dict | None:
        """Publish; for a rating, wait for the gateway's application ack and return it."""
        self.client.publish(self.topic(leaf), protocol.encode(msg), qos=1).wait_for_publish(timeout)
        if leaf != "rating":
            return None
        while True:
            ack = self.acks.get(timeout=timeout)
            if ack["seq"] == msg["seq"]:
                protocol.verify(self.key, "ack", ack)
                return ack

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
