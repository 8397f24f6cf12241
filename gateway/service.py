"""The running gateway: ingest, forwarder, work orders, event stream and HTTP API in one
process."""

from __future__ import annotations

import logging

import uvicorn

from .alarms import Alarms
from .api import create_app
from .auth import write_local_token
from .config import Config
from .data import devices
from .events import Events
from .forwarder import Forwarder
from .ingest import Ingest
from .ota import Rollouts
from .upkeep import Upkeep
from .workflow import WorkOrders

log = logging.getLogger("pingjia.gateway")


class Gateway:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.events = Events(cfg)
        self.alarms = Alarms(self.events.publish)
        self.work_orders = WorkOrders(cfg, self.events)
        self.forwarder = Forwarder(cfg, self.alarms)
        self.rollouts = Rollouts(cfg, self.events)
        self.upkeep = Upkeep(cfg, self.alarms)
        self.ingest = Ingest(cfg, on_stored=self.forwarder.wake.set, on_order=self.work_orders.opened,
                             on_event=self.events.publish, on_reply=self.rollouts.wake, alarms=self.alarms)
        self.rollouts.publish = lambda topic, payload, qos: self.ingest.client.publish(topic, payload, qos=qos)

    def run(self) -> None:
        """Serve until SIGINT or SIGTERM (uvicorn handles both), then stop cleanly."""
        local_token = write_local_token(self.cfg.home)
        self.events.start()
        self.work_orders.start()
        self.forwarder.start()
        self.ingest.start()
        self.rollouts.start()
        self.upkeep.start()
        if self.ingest.connected.wait(10):
            self.push_all_sessions()
        app = create_app(self.cfg, self, local_token)
        log.info("gateway for hall %s: API at %s", self.cfg.hall, self.cfg.api_url)
        try:
            uvicorn.run(app, host=self.cfg.api_host, port=self.cfg.api_port, log_level="warning",
                        timeout_graceful_shutdown=5)
        finally:
            self.upkeep.stop()
            self.rollouts.stop()
            self.ingest.stop()
            self.forwarder.stop()
            self.work_orders.stop()
            self.events.stop()

    def push_all_sessions(self) -> None:
        """At start, every device learns its window's current session (it may have changed
        while the gateway was down)."""
        with self.ingest.lock:
            windows = devices.windows(self.ingest.db)
        for w in windows:
            try:
                self.ingest.publish_session(w)
            except Exception:  # one window's bad data must not keep the hall's gateway down
                log.exception("could not push the session of window %s", w)
