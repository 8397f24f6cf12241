"""MQTT ingest: validate, verify, tag and commit each rating, and only then acknowledge.

The order per message is: store (SQLite commit) -> application ack to the device ->
MQTT PUBACK. paho runs with manual_ack and a persistent session, so a message the
gateway did not get to store (crash, kill -9) is redelivered by the broker, and the
device resends anything that was never application-acked.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections import Counter

import paho.mqtt.client as mqtt

from . import protocol, store
from .config import Config
from .protocol import Rejected

log = logging.getLogger("pingjia.ingest")


class Ingest:
    def __init__(self, cfg: Config, on_stored=None):
        self.cfg = cfg
        self.db = store.open_db(cfg.db_path)
        self.on_stored = on_stored  # called after each newly stored rating (wakes the forwarder)
        self.counts = Counter()  # stored, duplicate, rejected:<reason> since start
        self.lock = threading.RLock()  # the db connection is shared with the API's session pushes
        self.connected = threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pingjia-gateway-{cfg.hall}",
                        clean_session=False, manual_ack=True)
        c.username_pw_set(cfg.gateway_user, cfg.gateway_password)
        c.will_set(protocol.topic(cfg.hall, "gateway", "status"),
                   protocol.encode({"v": 1, "state": "offline"}), qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_socket_open = self._on_socket_open
        c.max_inflight_messages_set(100)
        c.reconnect_delay_set(0.2, 5)
        self.client = c

    def start(self) -> None:
        self.client.connect_async(self.cfg.broker_host, self.cfg.broker_port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.publish(protocol.topic(self.cfg.hall, "gateway", "status"),
                            protocol.encode({"v": 1, "state": "offline"}), qos=1, retain=True)
        self.client.disconnect()
        self.client.loop_stop()

    # -- paho callbacks ----------------------------------------------------------------
    def _on_socket_open(self, client, userdata, sock):
        try:  # Nagle would hold each small ack back by up to 40 ms
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            log.error("broker refused the gateway: %s", reason_code)
            return
        root = f"{protocol.ROOT}/{self.cfg.hall}/+"
        client.subscribe([(f"{root}/rating", 1), (f"{root}/status", 1), (f"{root}/health", 0),
                          (f"{root}/time/req", 0), (f"{root}/cmd/reply", 1)])
        client.publish(protocol.topic(self.cfg.hall, "gateway", "status"),
                       protocol.encode({"v": 1, "state": "online"}), qos=1, retain=True)
        self.connected.set()
        log.info("connected to the broker at %s:%s", self.cfg.broker_host, self.cfg.broker_port)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.connected.clear()
        log.warning("disconnected from the broker: %s", reason_code)

    def _on_message(self, client, userdata, msg):
        try:
            with self.lock:
                done = self.handle(msg.topic, msg.payload)
        except Exception:  # never let one message stop ingest; it is redelivered later
            log.exception("could not handle a message on %s", msg.topic)
            self.counts["internal_error"] += 1
            return
        if done and msg.qos:
            client.ack(msg.mid, msg.qos)

    # -- handling ----------------------------------------------------------------------
    def handle(self, topic: str, payload: bytes) -> bool:
        """Handle one message; True when it may be PUBACKed (stored or finally rejected)."""
        parts = protocol.parse_topic(topic)
        if parts is None or parts[0] != self.cfg.hall:
            return self._reject("wrong_topic", None, topic, payload, "not this hall's topic")
        _, dev, leaf = parts
        if leaf == "rating":
            return self._rating(dev, topic, payload)
        if leaf == "health":
            return self._health(dev, topic, payload)
        if leaf == "status":
            return self._status(dev, topic, payload)
        if leaf == "time/req":
            return self._time(dev, topic, payload)
        return True

    def _rating(self, dev, topic, payload) -> bool:
        now = time.time()
        d = None
        try:
            r, _ = protocol.parse_rating(payload)
            if r.dev != dev:
                raise Rejected("topic_mismatch", f"topic device {dev}, payload device {r.dev}")
            d = store.device(self.db, dev)
            if d is None or d["state"] != "active":
                d = None
                raise Rejected("unknown_device", dev)
            protocol.verify(bytes.fromhex(d["key"]), "rating", json.loads(payload))
            status, row = store.store_rating(self.db, r, d["window"], now)
        except Rejected as e:
            self._reject(e.reason, dev, topic, payload, e.detail)
            if e.reason == "replay":
                # Only a message whose signature checked out gets a reply: an answer to an
                # unverified one would let a forger make the device drop a real rating.
                self._ack(d, r.seq, "rejected", e.reason)
            return True
        self.counts[status] += 1
        self._ack(d, r.seq, status, None)
        if status == "stored":
            log.debug("stored %s window=%s staff=%s case=%s", r.id, row["window"], row["staff_id"], r.case)
            if row["tag_source"] == "case" and not row["repeat_of"]:
                self.publish_session(row["window"])  # the case is rated: devices stop offering it
            if self.on_stored:
                self.on_stored()
        return True

    def _ack(self, d: dict, seq: int, status: str, reason: str | None) -> None:
        msg = protocol.signed(bytes.fromhex(d["key"]), "ack",
                              {"dev": d["dev"], "seq": seq, "status": status, "reason": reason})
        self.client.publish(protocol.topic(self.cfg.hall, d["dev"], "ack"), protocol.encode(msg), qos=1)

    def _reject(self, reason, dev, topic, payload, detail) -> bool:
        self.counts[f"rejected:{reason}"] += 1
        log.warning("rejected a message on %s: %s %s", topic, reason, detail)
        store.record_rejection(self.db, reason, dev, topic, detail, payload)
        return True

    def _health(self, dev, topic, payload) -> bool:
        d = store.device(self.db, dev)
        if d is None:
            return self._reject("unknown_device", dev, topic, payload, "health from an unknown device")
        try:
            h = protocol.load_json(payload)
        except Rejected as e:
            return self._reject(e.reason, dev, topic, payload, e.detail)
        with self.db.conn:
            self.db["devices"].update(dev, {"health": json.dumps(h, ensure_ascii=False)[:2000],
                                            "health_at": time.time(), "fw": str(h.get("fw"))[:32]})
        return True

    def _status(self, dev, topic, payload) -> bool:
        if dev == "gateway" or store.device(self.db, dev) is None:
            return True  # our own retained status, or a retired device's old one
        try:
            online = protocol.load_json(payload).get("state") == "online"
        except Rejected:
            online = False
        with self.db.conn:
            self.db["devices"].update(dev, {"online": int(online), "status_at": time.time()})
        return True

    def _time(self, dev, topic, payload) -> bool:
        d = store.device(self.db, dev)
        if d is None:
            return self._reject("unknown_device", dev, topic, payload, "time request from an unknown device")
        try:
            req = protocol.load_json(payload)
        except Rejected as e:
            return self._reject(e.reason, dev, topic, payload, e.detail)
        now_ms = int(time.time() * 1000)
        if isinstance(req.get("ts"), int):  # the sync record: how far off the device clock was
            with self.db.conn:
                self.db["devices"].update(dev, {"clock_offset": now_ms / 1000 - req["ts"], "synced_at": now_ms / 1000})
        msg = protocol.signed(bytes.fromhex(d["key"]), "time", {"dev": dev, "id": req.get("id"), "now": now_ms})
        self.client.publish(protocol.topic(self.cfg.hall, dev, "time"), protocol.encode(msg), qos=0)
        return True

    # -- sessions pushed to devices ----------------------------------------------------
    def publish_session(self, window: str) -> None:
        """Push the window's current staff and latest case to its devices (retained). A
        rated case stays in the session, marked, so a device offers no second rating for it."""
        with self.lock:
            now = time.time()
            s = store.session_at(self.db, window, now)
            c = store.latest_case(self.db, window) if s else None
            if c and c["completed_at"] < s["started_at"]:
                c = None  # a case from an earlier session
            for d in store.devices_at(self.db, window):
                msg = {"dev": d["dev"], "window": window,
                       "staff_id": s and s["staff_id"], "staff_name": s and s["staff_name"],
                       "case": c and c["serial"], "item_code": c and c["item_code"],
                       "item_name": c and c["item_name"], "rated": bool(c and c["rating_id"]),
                       "at": int(now)}
                msg = protocol.signed(bytes.fromhex(d["key"]), "session", msg)
                self.client.publish(protocol.topic(self.cfg.hall, d["dev"], "session"),
                                    protocol.encode(msg), qos=1, retain=True)

