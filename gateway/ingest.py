"""MQTT ingest: validate, verify, tag and commit each rating, and only then acknowledge.

paho's network thread only queues what arrives. A writer thread takes the queued
messages, as many as the broker's in-flight window (Mosquitto sends the gateway at most
that many unacked QoS 1 messages: inflight_window, 100 by default), handles them in one
SQLite transaction, commits (one fsync for the group), and only then sends each device
its application ack and the broker its PUBACK.
paho runs with manual_ack and a persistent session, so a message the gateway did not get
to commit (crash, kill -9) is redelivered by the broker, and the device resends anything
it was never application-acked for.
"""

from __future__ import annotations

import base64
import collections
import json
import logging
import socket
import sqlite3
import threading
import time
from collections import Counter

import paho.mqtt.client as mqtt

from . import protocol
from .alarms import Alarms
from .config import Config
from .data import devices, firmware, hall, open_db, photos, ratings, rejections, summaries, transaction
from .protocol import Rejected

log = logging.getLogger("pingjia.ingest")

DROPPED_TOPIC = "$SYS/broker/publish/messages/dropped"
COMMIT_RETRY_S = 0.5  # after a failed commit (disk full): the retry that resumes by itself
QUEUE_QOS0_MAX = 2000  # messages waiting for the writer, above which QoS 0 ones are dropped


class LimitedLog:
    """At most PER_MINUTE lines a minute, then one line saying how many were left out: a
    flood of garbage is counted in the database, and must not fill the disk with a log."""

    PER_MINUTE = 30

    def __init__(self, logger: logging.Logger):
        self.logger = logger
        self.minute = 0
        self.written = 0
        self.skipped = 0

    def warning(self, fmt: str, *args) -> None:
        if self._room():
            self.logger.warning(fmt, *args)

    def exception(self, fmt: str, *args) -> None:
        """With the traceback, inside an except block; as rationed as the warnings."""
        if self._room():
            self.logger.exception(fmt, *args)

    def _room(self) -> bool:
        minute = int(time.monotonic() // 60)
        if minute != self.minute:
            if self.skipped:
                self.logger.warning("%d more such lines in the last minute left out of the log", self.skipped)
            self.minute, self.written, self.skipped = minute, 0, 0
        if self.written < self.PER_MINUTE:
            self.written += 1
            return True
        self.skipped += 1
        return False


FW_CHUNK = 2048  # bytes of a build per D/fw message: base64 keeps it under the device's 4 KB packets
FW_CHUNKS_PER_S = 200  # a device asks for one chunk at a time: ample for it, a bound for a flood
PHOTO_CHUNKS_PER_S = 20  # a photo is 9 chunks, asked for when the staff member changes


def _chunk(dev: str, h: str, name: str, off: int, path) -> dict:
    msg = {"v": 1, "dev": dev, "hash": h, "file": name, "off": off}
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(min(off, size))
            data = f.read(FW_CHUNK)
    except (OSError, TypeError):
        return {**msg, "error": "no such file in the build"}
    return {**msg, "size": size, "data": base64.b64encode(data).decode()}


class Rate:
    """At most `per_s` events a second per key, in one-second windows; bounded by the keys
    (the registered devices) that ask."""

    def __init__(self, per_s: int):
        self.per_s = per_s
        self._seen: dict[str, tuple[int, int]] = {}

    def allow(self, key: str, now: float) -> bool:
        second = int(now)
        at, n = self._seen.get(key, (second, 0))
        n = n + 1 if at == second else 1
        self._seen[key] = (second, n)
        return n <= self.per_s


class Ingest:
    def __init__(self, cfg: Config, on_stored=None, on_order=None, on_event=None, on_reply=None,
                 alarms: Alarms | None = None):
        self.cfg = cfg
        self.alarms = alarms or Alarms()
        self.db = open_db(cfg.db_path)
        self.offset_s = cfg.utc_offset_s  # the hall's days, for the statistics' summaries
        summaries.ensure(self.db, self.offset_s)
        self.on_stored = on_stored  # called after each newly stored rating (wakes the forwarder)
        self.on_order = on_order  # called with each work order a bad review opened, once committed
        self.on_event = on_event  # (kind, data): a rating stored, a device's status or heartbeat, for consoles
        self.on_reply = on_reply  # a device answered a command (wakes the rollouts)
        self._fw_limit = Rate(FW_CHUNKS_PER_S)
        self._photo_limit = Rate(PHOTO_CHUNKS_PER_S)
        self._fw_manifests: dict[str, dict] = {}  # by content hash: parsed once, not per chunk
        self.counts: Counter[str] = Counter()  # stored, duplicate, rejected:<reason>, ... since start
        self.broker_dropped: int | None = None  # the broker's own count of dropped messages
        self.lock = threading.RLock()  # guards self.db: the writer and the API's session pushes
        self.connected = threading.Event()
        self._devices: dict[str, dict] = {}  # cache of device rows; see forget()
        self._log = LimitedLog(log)  # what a flood of bad messages may write to the log
        self._queue: collections.deque = collections.deque()
        self.group = cfg.inflight_window  # messages per transaction
        self.group_wait = cfg.group_wait_ms / 1000
        self._cv = threading.Condition()
        self._stopping = False
        self._writer = threading.Thread(target=self._write_loop, name="ingest-writer", daemon=True)
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cfg.gateway_user,
                        clean_session=False, manual_ack=True)
        c.username_pw_set(cfg.gateway_user, cfg.gateway_password)
        c.will_set(self._gateway_status_topic, protocol.encode({"v": 1, "state": "offline"}), qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_socket_open = self._on_socket_open
        c.max_inflight_messages_set(1000)  # our own acks and sessions, outgoing
        c.max_queued_messages_set(0)
        c.reconnect_delay_set(0.2, 5)  # type: ignore[arg-type]  # seconds: paho takes a float, hints an int
        self.client = c

    @property
    def _gateway_status_topic(self) -> str:
        return protocol.topic(self.cfg.hall, "gateway", "status")

    def start(self) -> None:
        self._writer.start()
        self.client.connect_async("127.0.0.1", self.cfg.local_port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.publish(self._gateway_status_topic, protocol.encode({"v": 1, "state": "offline"}),
                            qos=1, retain=True)
        self.client.disconnect()
        self.client.loop_stop()
        with self._cv:
            self._stopping = True
            self._cv.notify()
        self._writer.join(5)

    def forget(self, dev: str) -> None:
        """Drop a device from the cache after the registry changed it."""
        with self.lock:
            self._devices.pop(dev, None)

    def forget_all(self) -> None:
        with self.lock:
            self._devices.clear()

    def ask_time(self) -> None:
        """Tell every device in service to take the time again now (`sync_time`, signed);
        one offline takes it when it connects, as it does at every connect."""
        now = time.time()
        with self.lock:
            listed = [d for d in devices.listed(self.db) if d["state"] != "retired"]
        for d in listed:
            cmd = protocol.signed(bytes.fromhex(d["key"]), "cmd", {"dev": d["dev"], "id": f"t-{int(now * 1000)}",
                                                                 "cmd": "sync_time", "at": int(now)})
            self.client.publish(protocol.topic(self.cfg.hall, d["dev"], "cmd"), protocol.encode(cmd), qos=0)

    def backlog(self) -> int:
        return len(self._queue)

    # -- paho callbacks (network thread: keep them short) -------------------------------
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
                          (f"{root}/time/req", 0), (f"{root}/cmd/reply", 1), (f"{root}/fw/req", 0),
                          (f"{root}/photo/req", 0), (DROPPED_TOPIC, 0)])
        client.publish(self._gateway_status_topic, protocol.encode({"v": 1, "state": "online"}), qos=1, retain=True)
        self.connected.set()
        log.info("connected to the broker at 127.0.0.1:%s", self.cfg.local_port)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.connected.clear()
        log.warning("disconnected from the broker: %s", reason_code)

    def _on_message(self, client, userdata, msg):
        if msg.topic == DROPPED_TOPIC:
            try:
                self.broker_dropped = int(msg.payload)
            except ValueError:
                pass
            return
        with self._cv:
            if msg.qos == 0 and len(self._queue) >= QUEUE_QOS0_MAX:
                # A QoS 1 message waits for its PUBACK, so the broker sends at most its
                # in-flight window of them; QoS 0 (heartbeats, time requests, a flood)
                # has no such brake. Drop it, counted: no rating depends on one.
                self.counts["dropped_qos0"] += 1
                return
            self._queue.append(msg)
            if len(self._queue) == 1 or len(self._queue) >= self.group:
                self._cv.notify()

    # -- the writer thread -------------------------------------------------------------
    def _write_loop(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._stopping:
                    self._cv.wait()
                if self._stopping:
                    return
                if len(self._queue) < self.group and self.group_wait:
                    self._cv.wait(self.group_wait)
                n = min(self.group, len(self._queue))
                batch = [self._queue.popleft() for _ in range(n)]
            try:
                after = self._commit_group(batch)
            except Exception as e:
                # The transaction rolled back (disk full, I/O error, a bug): nothing was
                # acked, so nothing is lost; the devices keep their ratings and resend.
                # Put the group back and try again shortly, until the disk has room again.
                self._commit_failed(e, len(batch))
                with self._cv:
                    self._queue.extendleft(reversed(batch))
                time.sleep(COMMIT_RETRY_S)
                continue
            if self.alarms.up("storage"):
                self.alarms.clear("storage", f"committing again; {self.counts['commit_retries']} retries so far")
            self._acknowledge(after)

    def _commit_failed(self, e: Exception, n: int) -> None:
        self.counts["commit_retries"] += 1
        if isinstance(e, sqlite3.Error):
            what = getattr(e, "sqlite_errorname", None) or type(e).__name__
            detail = (f"the database cannot commit ({what}: {e}); nothing is acked, devices keep their "
                      f"ratings: free space on {self.cfg.home}")
        else:
            detail = f"a group of messages broke the writer ({e!r:.200}); nothing is acked"
        if self.alarms.set("storage", detail):
            log.exception("could not commit %d messages; retrying every %s s", n, COMMIT_RETRY_S)

    def _commit_group(self, batch) -> list:
        """Handle a group in one transaction (one fsync); returns, per message, the
        actions to run now that it is committed."""
        now = time.time()
        after = []
        with self.lock, transaction(self.db):
            for msg in batch:
                after.append((msg, self._handle_one(msg, now)))
        return after

    def _handle_one(self, msg, now: float) -> list:
        """One message inside the group, fenced by a savepoint: a message that breaks its
        handler is rolled back and rejected as unprocessable, instead of failing (and
        endlessly retrying) the whole group. Database trouble still fails the group."""
        if msg.retain and msg.payload and not msg.topic.endswith("/status"):
            # Only a status is kept by the broker on purpose. Anything else retained was
            # left by a login for every future subscriber: a copy, not what a device says
            # now (a time request replayed at each gateway start would rewrite its clock
            # record). Refused, counted, and cleared; MQTT 3.1.1 marks it retained when a
            # subscription brings it, after a reconnect.
            actions = self._reject("retained", None, msg.topic, msg.payload, "a retained copy", now)
            actions.append(lambda: self.client.publish(msg.topic, b"", qos=1, retain=True))
            return actions
        try:
            with transaction(self.db):  # a savepoint: what a failed message wrote is undone
                actions = self.handle(msg.topic, msg.payload, now)
        except Rejected as e:
            actions = self._reject(e.reason, None, msg.topic, msg.payload, e.detail, now)
        except (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError, sqlite3.DataError) as e:
            # what this message made of a statement: its own fault, the same at every retry
            self._log.exception("a message on %r broke a statement", msg.topic[:100])
            actions = self._reject("unprocessable", None, msg.topic, msg.payload, repr(e)[:200], now)
        except sqlite3.Error:
            raise  # disk full, I/O error, locked, corrupt: retry the group, nothing was acked
        except Exception as e:
            self._log.exception("a message on %r broke its handler", msg.topic[:100])
            actions = self._reject("unprocessable", None, msg.topic, msg.payload, repr(e)[:200], now)
        return actions

    def _acknowledge(self, after) -> None:
        for msg, actions in after:
            for act in actions:
                try:
                    act()
                except Exception:  # committed already: a lost ack only makes the device resend
                    log.exception("after-commit action failed for a message on %s", msg.topic)
                    self.counts["internal_error"] += 1
            if msg.qos:
                self.client.ack(msg.mid, msg.qos)

    # -- handling (inside the group's transaction) --------------------------------------
    def handle(self, topic: str, payload: bytes, now: float) -> list:
        """Write what one message says; returns actions for after the commit."""
        parts = protocol.parse_topic(topic)
        if parts is None or parts[0] != self.cfg.hall:
            return self._reject("wrong_topic", None, topic, payload, "not this hall's topic", now)
        _, dev, leaf = parts
        if not payload:
            return []  # a retained message being cleared (the protocol sends no empty payload)
        if leaf == "rating":
            return self._rating(dev, topic, payload, now)
        if dev == "gateway":
            return []  # our own retained status
        handler = {"health": self._health, "status": self._status, "time/req": self._time,
                   "cmd/reply": self._cmd_reply, "fw/req": self._fw_req, "photo/req": self._photo_req}.get(leaf)
        if handler is None:
            return []
        d = self._device(dev)
        if d is None:
            return self._reject("unknown_device", dev, topic, payload, f"{leaf} from an unknown device", now)
        return handler(d, protocol.load_json(payload), now)

    def _device(self, dev: str) -> dict | None:
        d = self._devices.get(dev)
        if d is None:
            d = devices.get(self.db, dev)
            if d is None or d["state"] == "retired":
                return None
            self._devices[dev] = d
        return d

    def _rating(self, dev, topic, payload, now) -> list:
        try:
            r, msg = protocol.parse_rating(payload)
            if r.dev != dev:
                raise Rejected("topic_mismatch", f"topic device {dev}, payload device {r.dev}")
            d = self._device(dev)
            if d is None:
                raise Rejected("unknown_device", f"{dev} is not registered or is retired")
            canonical = protocol.canonical("rating", msg)
            if not any(protocol.check(key, canonical, r.sig) for key in devices.verify_keys(d, now)):
                raise Rejected("bad_signature", "no key of this device verifies it")
        except Rejected as e:
            # No answer: only a rating the gateway stored is acked, so nobody can make a
            # device drop a rating by sending something in its name.
            return self._reject(e.reason, dev, topic, payload, e.detail, now)
        status, row = ratings.store(self.db, r, d, now, self.offset_s)
        if d["state"] == "provisioned":
            self._activate(d)
        self.counts[status] += 1
        held = row["held"]
        if held and status == "stored":
            self.counts[f"held:{held}"] += 1
            self._log.warning("holding rating %s for an admin: %s", row["id"], held)
        actions = [lambda: self._ack(d, r.seq, "held" if held else status, held)]
        if status == "stored":
            if row["tag_source"] == "case" and not row["repeat_of"] and not held:
                window = row["window"]
                actions.append(lambda: self.publish_session(window))  # devices stop offering the case
            if self.on_stored:
                actions.append(self.on_stored)
            if row.get("work_order") and self.on_order:
                order = row["work_order"]
                actions.append(lambda: self.on_order(order))  # the alert, within a second of the press
            if self.on_event and not held:
                seen = {"rating_id": row["id"], **{k: row[k] for k in ("dev", "window", "staff_id", "level",
                                                                        "case_no", "rated_at", "repeat_of")}}
                actions.append(lambda: self.on_event("rating", seen))
        return actions

    def _activate(self, d: dict) -> None:
        devices.activate(self.db, d["dev"])
        d["state"] = "active"

    def _ack(self, d: dict, seq: int, status: str, reason: str | None) -> None:
        msg = protocol.signed(bytes.fromhex(d["key"]), "ack",
                              {"dev": d["dev"], "seq": seq, "status": status, "reason": reason})
        # QoS 0: an ack that gets lost costs only a resend (answered "duplicate"), while
        # QoS 1 would double the gateway's packets per rating (measured: 5,200/s vs 7,600/s)
        self.client.publish(protocol.topic(self.cfg.hall, d["dev"], "ack"), protocol.encode(msg), qos=0)

    def _reject(self, reason, dev, topic, payload, detail, now) -> list:
        self.counts[f"rejected:{reason}"] += 1
        self._log.warning("rejected a message on %r: %s %s", topic[:100], reason, detail)
        rejections.record(self.db, reason, dev, topic, detail, payload, now)
        return []

    def _health(self, d, msg, now) -> list:
        h = protocol.parse_health(msg, d["dev"])
        devices.set_health(self.db, d["dev"], h, now)
        if d["state"] == "provisioned":
            self._activate(d)
        return self._device_event(d["dev"], "health", {k: h.get(k) for k in ("outbox", "oldest_s", "rssi")})

    def _device_event(self, dev: str, what: str, data: dict) -> list:
        if not self.on_event:
            return []
        return [lambda: self.on_event("device", {"dev": dev, "what": what, **data})]

    def _status(self, d, msg, now) -> list:
        protocol.check_version(msg)
        if msg.get("state") not in ("online", "offline"):
            raise Rejected("schema", "status state is neither online nor offline")
        devices.set_online(self.db, d["dev"], msg["state"] == "online", now)
        return self._device_event(d["dev"], "status", {"online": msg["state"] == "online"})

    def _time(self, d, req, now) -> list:
        """Answer a time request, and keep the sync record: at gateway time `now` the device
        had been up `up` milliseconds in boot `boot` (protocol.md section 8)."""
        dev = d["dev"]
        protocol.check_version(req)
        if req.get("dev") != dev:
            raise Rejected("topic_mismatch", "time request for another device")
        small, time_ms = protocol.int_in(0, protocol.SEQ_MAX + 1), protocol.int_in(0, protocol.TS_MAX)
        if not (small(req.get("id")) and small(req.get("boot")) and time_ms(req.get("up"))
                and time_ms(req.get("ts"))):
            raise Rejected("schema", "time request fields missing or out of range")
        boot, up, ts = req["boot"], req["up"], req["ts"]
        offset = now - ts / 1000  # seconds the device clock was behind
        devices.set_sync(self.db, dev, now, boot, up, offset)
        d.update(sync_at=now, sync_boot=boot, sync_up=up, clock_offset=offset)
        reply = protocol.signed(bytes.fromhex(d["key"]), "time",
                                {"dev": dev, "id": req["id"], "now": int(now * 1000)})
        return [lambda: self.client.publish(protocol.topic(self.cfg.hall, dev, "time"),
                                            protocol.encode(reply), qos=0)]

    def _cmd_reply(self, d, msg, now) -> list:
        protocol.check_version(msg)
        if msg.get("dev") != d["dev"]:
            raise Rejected("topic_mismatch", "command reply for another device")
        if not (protocol.is_text(msg.get("id"), 32) and type(msg.get("ok")) is bool
                and protocol.is_text(msg.get("detail") or "-", 100)):
            raise Rejected("schema", "command reply fields missing or malformed")
        firmware.replied(self.db, d["dev"], msg["id"], msg["ok"], msg.get("detail") or "", now)
        return [self.on_reply] if self.on_reply else []

    def _fw_req(self, d, req, now) -> list:
        """A chunk of the build a rollout is sending this device (protocol.md section 12).
        Only that build, only its files, at most FW_CHUNKS_PER_S a second per device: a
        device's key buys no more than its own update."""
        dev = d["dev"]
        protocol.check_version(req)
        if req.get("dev") != dev:
            raise Rejected("topic_mismatch", "firmware request for another device")
        off, name, h = req.get("off"), req.get("file"), req.get("hash")
        if not (protocol.int_in(0, firmware.MAX_BYTES)(off) and isinstance(name, str)
                and firmware.NAME.match(name) and isinstance(h, str) and protocol.HEX64.match(h)):
            raise Rejected("schema", "firmware request fields missing or malformed")
        if not self._fw_limit.allow(dev, now):
            raise Rejected("fw_request", "more firmware requests than a device makes")
        want = firmware.wanted(self.db, dev)
        if want is None or want["hash"] != h:
            raise Rejected("fw_request", f"no rollout is sending build {h[:12]} to this device")
        manifest = self._fw_manifests.get(h)
        if manifest is None:
            if len(self._fw_manifests) > 2 * firmware.MAX_BUILDS:
                self._fw_manifests.clear()
            manifest = self._fw_manifests[h] = json.loads(want["manifest"])  # a hash names one content
        path = firmware.file_path(self.cfg.home, h, name, manifest)
        topic = protocol.topic(self.cfg.hall, dev, "fw")
        return [lambda: self.client.publish(topic, protocol.encode(_chunk(dev, h, name, off, path)), qos=0)]

    def _photo_req(self, d, req, now) -> list:
        """A chunk of the photo of the staff member at this device's window (protocol.md
        section 13): only that photo, at most PHOTO_CHUNKS_PER_S a second per device, so a
        device's key reads no other staff member's face."""
        dev = d["dev"]
        protocol.check_version(req)
        if req.get("dev") != dev:
            raise Rejected("topic_mismatch", "photo request for another device")
        off, h = req.get("off"), req.get("hash")
        if not (protocol.int_in(0, photos.BYTES - 1)(off) and isinstance(h, str) and protocol.HEX64.match(h)):
            raise Rejected("schema", "photo request fields missing or malformed")
        if not self._photo_limit.allow(dev, now):
            raise Rejected("photo_request", "more photo requests than a tablet makes")
        s = hall.session_at(self.db, d["window"], now)
        p = s and photos.get(self.db, s["staff_id"])
        if not p or p["hash"] != h:
            raise Rejected("photo_request", f"{h[:12]} is not the photo of the staff member at {d['window']}")
        msg = {"v": 1, "dev": dev, "hash": h, "off": off, "size": photos.BYTES,
               "data": base64.b64encode(p["pixels"][off:off + photos.CHUNK]).decode()}
        topic = protocol.topic(self.cfg.hall, dev, "photo/chunk")
        return [lambda: self.client.publish(topic, protocol.encode(msg), qos=0)]

    # -- sessions pushed to devices ----------------------------------------------------
    def publish_session(self, window: str) -> None:
        """Push the window's current staff and latest case to its devices (retained). A
        rated case stays in the session, marked, so a device offers no second rating for it."""
        with self.lock:
            now = time.time()
            s = hall.session_at(self.db, window, now)
            c = hall.current_case(self.db, window, s)
            for d in devices.at_window(self.db, window):
                msg = {"dev": d["dev"], "window": window,
                       "staff_id": s and s["staff_id"], "staff_name": s and s["staff_name"],
                       "case": c and c["serial"], "item_code": c and c["item_code"],
                       "item_name": c and c["item_name"], "rated": bool(c and c["rating_id"]),
                       "at": int(now)}
                try:
                    msg = protocol.signed(bytes.fromhex(d["key"]), "session", msg)
                except (Rejected, ValueError):
                    # stored before names were checked: say so, and keep serving the others
                    log.error("cannot sign the session for %s at window %s: bad stored text", d["dev"], window)
                    self.counts["bad_session"] += 1
                    continue
                self.client.publish(protocol.topic(self.cfg.hall, d["dev"], "session"),
                                    protocol.encode(msg), qos=1, retain=True)
                if d["model"] == "tablet":  # its staff member's photo, which the five-button cannot show
                    staff = s["staff_id"] if s else None
                    photo = protocol.signed(bytes.fromhex(d["key"]), "photo", {
                        "dev": d["dev"], "staff_id": staff, "hash": photos.hash_of(self.db, staff), "at": int(now)})
                    self.client.publish(protocol.topic(self.cfg.hall, d["dev"], "photo"),
                                        protocol.encode(photo), qos=1, retain=True)

    def clear_retained(self, dev: str) -> None:
        """A retired device leaves no retained session or status behind."""
        for leaf in ("session", "status", "photo"):
            self.client.publish(protocol.topic(self.cfg.hall, dev, leaf), b"", qos=1, retain=True)
