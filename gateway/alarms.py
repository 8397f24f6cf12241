"""The gateway's own alarms: a condition on the box that needs a person (the database
cannot commit, the disk is nearly full, the clock stepped). Each is raised once when it
begins and cleared once when it ends, as an `alarm` event (consoles and the alert webhook
hear of it) and a line in the log; while it lasts it shows in GET /api/v1/gateway, the
health probe and the metrics. A condition that goes on is not announced again."""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("pingjia.alarms")

KINDS = ("storage", "disk_low", "clock_step")


class Alarms:
    def __init__(self, publish=None):
        self.publish = publish  # (kind, data): the event stream's publish
        self._active: dict[str, dict] = {}
        self._lock = threading.Lock()

    def set(self, name: str, detail: str) -> bool:
        """Raise `name` (its detail updated if it is up already); True if it was not up."""
        with self._lock:
            was = self._active.get(name)
            self._active[name] = {"since": was["since"] if was else time.time(), "detail": detail}
        if was:
            return False
        log.error("alarm %s: %s", name, detail)
        if self.publish:
            self.publish("alarm", {"name": name, "state": "raised", "detail": detail})
        return True

    def clear(self, name: str, detail: str = "") -> bool:
        """End `name`; True if it was up."""
        with self._lock:
            was = self._active.pop(name, None)
        if not was:
            return False
        lasted = round(time.time() - was["since"], 1)
        log.warning("alarm %s cleared after %s s%s", name, lasted, f": {detail}" if detail else "")
        if self.publish:
            self.publish("alarm", {"name": name, "state": "cleared", "detail": detail, "lasted_s": lasted})
        return True

    def up(self, name: str) -> bool:
        return name in self._active

    def active(self) -> dict[str, dict]:
        with self._lock:
            return {k: dict(v) for k, v in self._active.items()}
