"""The running gateway: ingest, forwarder, work orders, event stream and HTTP API in one
process."""

from __future__ import annotations

import logging
import time

import uvicorn

from . import clock
from .alarms import Alarms
from .api import create_app
from .auth import write_local_token
from .config import Config, hold
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
        self.upkeep = Upkeep(cfg, self.alarms, on_step=self.clock_stepped, each=self.clock_settled)
        self.stepped_at: float | None = None
        self.ingest = Ingest(cfg, on_stored=self.forwarder.wake.set, on_order=self.work_orders.opened,
                             on_event=self.events.publish, on_reply=self.rollouts.wake, alarms=self.alarms)
        self.rollouts.publish = lambda topic, payload, qos: self.ingest.client.publish(topic, payload, qos=qos)

    def run(self) -> None:
        """Serve until SIGINT or SIGTERM (uvicorn handles both), then stop cleanly."""
        self.home_lock = hold(self.cfg.home)  # one gateway per home, held while this runs
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

    def clock_stepped(self, delta: float, before: float) -> None:
        """The box's clock stepped by delta seconds after `before` (clock.py): the present
        follows it, and every device is asked to take the time again. Raises if the store
        cannot take it (the upkeep tries again)."""
        self.alarms.clear("clock_step")  # an earlier step's: this one is announced afresh
        self.alarms.set("clock_step", f"the box's clock stepped {delta:+.1f} s; open sessions, devices' records, "
                                      f"due times and deadlines follow it; devices are asked for the time again. "
                                      f"Check the box's time synchronisation if it was not an NTP correction")
        now = time.time()
        with self.ingest.lock:
            clock.shift(self.ingest.db, delta, before, now)
            self.ingest.forget_all()
        self.stepped_at = now
        self.ingest.ask_time()
        self.push_all_sessions()
        self.forwarder.wake.set()

    def clock_settled(self) -> None:
        """The step's alarm ends once every online device has taken the time since."""
        if self.stepped_at is None or not self.alarms.up("clock_step"):
            return
        with self.ingest.lock:
            behind = devices.unsynced_since(self.ingest.db, self.stepped_at)
        if not behind:
            self.alarms.clear("clock_step", "every online device has taken the time since")

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
