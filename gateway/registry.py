"""The device registry: every change keeps three things in step — the database, the
broker's password file and ACL (reloaded without dropping other devices), and the running
ingest's view of the device — and is written to the audit log, in its own transaction,
with who made it."""

from __future__ import annotations

import time

from . import tls
from .broker import Broker
from .config import Config
from .data import audit, devices, transaction


class Registry:
    def __init__(self, cfg: Config, db, ingest=None):
        self.cfg = cfg
        self.db = db
        self.ingest = ingest  # None when the gateway is not running in this process
        self._ca_b64: str | None = None

    def add(self, dev: str, window: str, model: str = "five-button", actor: str = "local") -> dict:
        """Register a device. The returned key and password are shown once, never again."""
        with transaction(self.db):
            creds = devices.register(self.db, dev, window, model)
            audit.record(self.db, actor, "device.add", dev, time.time(), window=window, model=model)
        self._sync_broker()
        if self.ingest:
            self.ingest.publish_session(window)
        return self.device_config(creds)

    def add_many(self, pairs: list[tuple[str, str]], model: str = "five-button", actor: str = "local") -> list[dict]:
        """Register many (device, window) pairs with one broker reload."""
        with transaction(self.db):
            out = [self.device_config(devices.register(self.db, dev, window, model)) for dev, window in pairs]
            audit.record(self.db, actor, "device.add_many", None, time.time(), devices=len(pairs), model=model)
        self._sync_broker()
        return out

    def move(self, dev: str, window: str, actor: str = "local") -> dict:
        with transaction(self.db):
            d = devices.move(self.db, dev, window)
            audit.record(self.db, actor, "device.move", dev, time.time(), window=window)
        if self.ingest:
            self.ingest.forget(dev)
            self.ingest.publish_session(window)
        return d

    def retire(self, dev: str, actor: str = "local") -> None:
        """Lock the device out at once: the broker drops its connection on reload."""
        with transaction(self.db):
            devices.retire(self.db, dev)
            audit.record(self.db, actor, "device.retire", dev, time.time())
        self._sync_broker()
        if self.ingest:
            self.ingest.forget(dev)
            self.ingest.clear_retained(dev)

    def rotate(self, dev: str, grace_s: float, actor: str = "local") -> dict:
        """New key and password; the device must be provisioned again to reconnect."""
        with transaction(self.db):
            creds = devices.rotate(self.db, dev, grace_s)
            audit.record(self.db, actor, "device.rotate", dev, time.time(), grace_hours=round(grace_s / 3600, 2))
        self._sync_broker()
        if self.ingest:
            self.ingest.forget(dev)
        return self.device_config(creds)

    def device_config(self, creds: dict) -> dict:
        """What goes into the device's config.json: with TLS on, the hall CA the device
        checks the broker against."""
        out = {**creds, "user": creds["dev"], "hall": self.cfg.hall,
               "broker": [self.cfg.broker_host, self.cfg.broker_port]}
        if self.cfg.broker_tls:
            out["ca"] = self._ca()
        return out

    def _ca(self) -> str:
        """The hall CA as a device's config carries it, read once per registry (add_many
        provisions thousands of devices with the one CA)."""
        if self._ca_b64 is None:
            tls.ensure_ca(self.cfg.tls_dir, self.cfg.hall)
            self._ca_b64 = tls.ca_der_b64(self.cfg.tls_dir)
        return self._ca_b64

    def _sync_broker(self) -> None:
        broker = Broker(self.cfg)
        broker.write_config(devices.password_hashes(self.db))
        broker.reload()
