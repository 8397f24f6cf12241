"""Over-the-air rollouts as they run (protocol.md section 12; data in data/firmware.py).

A sweeper moves each running rollout on: it sends the stage's devices the signed update
command, and a device counts as updated only once it proves healthy on the new build:
its heartbeat after the command names the build's hash, off trial, clock synced, online,
outbox not growing. When every device of a stage is, the next stage starts. A device that
rolls the build back, refuses it, or is not healthy within DEVICE_TIMEOUT_S halts the
rollout by itself; an admin or technician resumes or cancels it (the API).
"""

from __future__ import annotations

import logging
import time

from sqlite_utils import Database

from . import protocol
from .config import Config
from .data import devices, firmware, open_db, transaction
from .events import Events
from .worker import Worker

log = logging.getLogger("pingjia.ota")

SWEEP_S = 2.0
RESEND_S = 120.0  # a command with no answer is sent again (the device may have missed it offline)
DEVICE_TIMEOUT_S = 900.0  # from the command to healthy on the new build


class Rollouts:
    def __init__(self, cfg: Config, events: Events, publish=None):
        self.cfg = cfg
        self.events = events
        self.publish = publish  # (topic, payload bytes, qos): the ingest's MQTT client
        self.timeout_s = DEVICE_TIMEOUT_S
        self._db: Database | None = None  # the sweeps' own connection, opened in their thread
        self.worker = Worker("rollouts", self._tick, SWEEP_S, at_once=True)
        self.start, self.stop, self.wake = self.worker.start, self.worker.stop, self.worker.wake

    def _tick(self) -> None:
        self._db = db = self._db or open_db(self.cfg.db_path)
        for rid in firmware.running(db):
            try:
                self.sweep(db, rid, time.time())
            except Exception:  # one rollout's bad row must not hold up the others
                log.exception("rollout %s: sweep failed; trying again in %s s", rid, SWEEP_S)

    # -- one rollout ------------------------------------------------------------------------
    def sweep(self, db, rid: int, now: float) -> None:
        r = firmware.rollout(db, rid)
        r["version"] = (firmware.get(db, r["hash"]) or {}).get("version") or ""
        stage = [d for d in r["devices"] if d["stage"] == r["stage"]]
        for d in stage:
            row = devices.get(db, d["dev"])
            why = self._step(db, r, d, row, now)
            if why:
                self._halt(db, r, why, now)
                return
        if all(d["state"] == "healthy" for d in firmware.rollout(db, rid)["devices"] if d["stage"] == r["stage"]):
            last = r["stage"] + 1 >= len(r["stages"])
            with transaction(db):
                db.execute("update rollouts set stage = stage + ?, state = ?, updated_at = ? where id = ?",
                           [0 if last else 1, "done" if last else "running", now, rid])
            self.events.publish("rollout", {"rollout": rid, "state": "done" if last else "running",
                                            "stage": r["stage"] + (0 if last else 1)})
            log.info("rollout %s: stage %s done%s", rid, r["stage"], "; finished" if last else "")
            if not last:
                self.sweep(db, rid, now)

    def _step(self, db, r: dict, d: dict, row: dict | None, now: float) -> str | None:
        """Move one device on; returns why the rollout must halt, if it must."""
        dev, h = d["dev"], r["hash"]
        if row is None or row["state"] == "retired":
            self._set(db, r["id"], dev, now, state="failed", detail="retired or gone")
            return f"{dev} is retired or gone"
        if d["state"] in ("healthy", "failed", "rolled_back"):
            return f"{dev}: {d['detail']}" if d["state"] != "healthy" else None
        health = devices.health(row) or {}
        rb = health.get("rolled_back") if isinstance(health.get("rolled_back"), dict) else None
        seen_after = (row["health_at"] or 0) > (d["sent_at"] or now)
        if rb and rb.get("hash") == h and str(rb.get("cmd")).startswith(f"u-{r['id']}-") and seen_after:
            self._set(db, r["id"], dev, now, state="rolled_back", detail=f"rolled back: {rb.get('why')}")
            return f"{dev} rolled back the build ({rb.get('why')})"
        if d["state"] != "waiting" and seen_after and health.get("fwh") == h and not health.get("trial") \
                and health.get("tsync") and row["online"] and not row["outbox_rises"]:
            self._set(db, r["id"], dev, now, state="healthy", detail="healthy on the new build")
            self.events.publish("rollout", {"rollout": r["id"], "dev": dev, "state": "healthy"})
            return None
        if d["state"] == "waiting" or (d["state"] == "sent" and now - (d["sent_at"] or 0) > RESEND_S):
            self._send(db, r, d, row, now)
        elif d["sent_at"] and now - d["sent_at"] > self.timeout_s:
            self._set(db, r["id"], dev, now, state="failed", detail=f"not healthy in {self.timeout_s:.0f} s")
            return f"{dev} was not healthy on the build within {self.timeout_s:.0f} s"
        return None

    def _send(self, db, r: dict, d: dict, row: dict, now: float) -> None:
        attempt = d["attempts"] + 1
        cmd = protocol.signed(bytes.fromhex(row["key"]), "update", {
            "dev": d["dev"], "id": f"u-{r['id']}-{attempt}", "cmd": "update", "hash": r["hash"],
            "version": r["version"], "at": int(now)})
        # sent_at stays the first command's: the timeout counts from there
        self._set(db, r["id"], d["dev"], now, state="sent", attempts=attempt, sent_at=d["sent_at"] or now)
        if self.publish:
            self.publish(protocol.topic(self.cfg.hall, d["dev"], "cmd"), protocol.encode(cmd), 1)

    def _set(self, db, rid: int, dev: str, now: float, **fields) -> None:
        with transaction(db):
            firmware.set_device(db, rid, dev, now, **fields)

    def _halt(self, db, r: dict, why: str, now: float) -> None:
        firmware.set_state(db, r["id"], "halted", now, why)
        log.warning("rollout %s halted: %s", r["id"], why)
        self.events.publish("rollout", {"rollout": r["id"], "state": "halted", "why": why})
