"""The running gateway: ingest, forwarder and HTTP API in one process."""

from __future__ import annotations

import logging

import uvicorn

from .api import create_app
from .config import Config
from .data import devices
from .forwarder import Forwarder
from .ingest import Ingest

log = logging.getLogger("pingjia.gateway")


class Gateway:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.forwarder = Forwarder(cfg)
        self.ingest = Ingest(cfg, on_stored=self.forwarder.wake.set)

    def run(self) -> None:
        """Serve until SIGINT or SIGTERM (uvicorn handles both), then stop cleanly."""
        self.forwarder.start()
        self.ingest.start()
        if self.ingest.connected.wait(10):
            self.push_all_sessions()
        app = create_app(self.cfg, self)
        log.info("gateway for hall %s: API at %s", self.cfg.hall, self.cfg.api_url)
        try:
            uvicorn.run(app, host=self.cfg.api_host, port=self.cfg.api_port, log_level="warning",
                        timeout_graceful_shutdown=5)
        finally:
            self.ingest.stop()
            self.forwarder.stop()

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
