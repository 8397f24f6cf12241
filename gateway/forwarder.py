"""The forwarder: stored ratings -> the provincial platform, over HTTP.

The outbox is the ratings table itself (forward_state 'pending'). A rating is marked
'forwarded' only on the platform's success reply for that rating ID; everything else is
retried with exponential backoff and jitter. Sending a rating twice is harmless because
the platform keeps one record per rating ID. Repeats (a second rating for a case) are
stored but never forwarded as new ratings.
"""

from __future__ import annotations

import logging
import random
import threading
import time

import httpx

from . import store
from .config import Config
from .protocol import LEVELS, REASONS

log = logging.getLogger("pingjia.forwarder")

BATCH = 50
BACKOFF_MIN = 1.0
BACKOFF_MAX = 300.0


def platform_record(row: dict) -> dict:
    """The neutral record the platform stand-in takes; province profiles map from this."""
    return {
        "id": row["id"], "dev": row["dev"], "seq": row["seq"], "case_no": row["case_no"],
        "window": row["window"], "staff_id": row["staff_id"], "staff_name": row["staff_name"],
        "item_code": row["item_code"], "item_name": row["item_name"],
        "level": row["level"], "level_name": LEVELS[row["level"]][0], "score": row["score"],
        "reasons": [r for r in (row["reason"] or "").split(",") if r],
        "reason_names": [REASONS[r] for r in (row["reason"] or "").split(",") if r],
        "rated_at": row["rated_at"], "clock": row["clock"], "channel": "hall_evaluator",
    }


class Forwarder:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.db = store.open_db(cfg.db_path)
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.http = httpx.Client(base_url=cfg.platform_url, timeout=10.0,
                                 headers={"Authorization": f"Bearer {cfg.platform_token}"})
        self.thread = threading.Thread(target=self.run, name="forwarder", daemon=True)
        self.last_error: str | None = None

    def start(self) -> None:
        if not self.cfg.platform_url:
            self.last_error = "forwarding is off: no platform_url in the gateway's settings"
            log.warning(self.last_error)
            return
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        if self.thread.is_alive():
            self.thread.join(5)

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                sent = self.once()
            except Exception as e:  # the loop must outlive any one failure
                log.exception("forwarder pass failed")
                self.last_error = repr(e)
                sent = 0
            if not sent:
                self.wake.wait(0.5)
                self.wake.clear()

    def once(self) -> int:
        """Send one batch of due ratings; returns how many the platform accepted."""
        now = time.time()
        rows = list(self.db["ratings"].rows_where(
            "forward_state = 'pending' and next_attempt_at <= ?", [now],
            order_by="next_attempt_at, received_at", limit=BATCH))
        if not rows:
            return 0
        try:
            resp = self.http.post("/api/v1/evaluations", json={"records": [platform_record(r) for r in rows]})
            resp.raise_for_status()
            results = {x["id"]: x["status"] for x in resp.json()["results"]}
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as e:
            self.last_error = f"{type(e).__name__}: {e}"[:300]
            log.warning("platform push failed: %s", self.last_error)
            self._retry_later([r for r in rows], self.last_error)
            return 0
        ok = [r["id"] for r in rows if results.get(r["id"]) in ("accepted", "duplicate")]
        if ok:
            with self.db.conn:
                self.db.execute("update ratings set forward_state = 'forwarded', forwarded_at = ?, "
                                f"attempts = attempts + 1 where id in ({','.join('?' * len(ok))})",
                                [time.time(), *ok])
        missed = [r for r in rows if r["id"] not in set(ok)]
        if missed:
            self._retry_later(missed, "platform did not confirm these ratings")
        self.last_error = None
        return len(ok)

    def _retry_later(self, rows: list[dict], error: str) -> None:
        now = time.time()
        with self.db.conn:
            for r in rows:
                delay = min(BACKOFF_MAX, BACKOFF_MIN * 2 ** min(r["attempts"], 16))
                delay *= random.uniform(0.5, 1.0)  # jitter: a hall's retries must not align
                self.db.execute("update ratings set attempts = attempts + 1, next_attempt_at = ?, "
                                "last_error = ? where id = ?", [now + delay, error, r["id"]])
