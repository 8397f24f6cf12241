"""The gateway's event stream: alerts (a bad review, a deadline near or missed, an
escalation, an alarm of the gateway's own: alarms.py) and changes (a work-order step),
to every open GET /api/v1/events and, for alerts, to the hall's own system by a signed
webhook.

Events are published from any thread (the ingest's writer, the API, the sweeper) and read
on the API's event loop. Each subscriber has a bounded queue: one that does not read is
cut off rather than let memory grow. The last RECENT events are kept, so that a console
that reconnects with Last-Event-ID misses nothing in between.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import hmac
import itertools
import json
import logging
import queue
import threading
import time
from collections import Counter

import httpx

from .config import Config
from .worker import Worker

log = logging.getLogger("pingjia.events")

ALERTS = ("bad_review", "deadline", "escalation", "alarm")  # what the webhook is told too
RECENT = 500
SUBSCRIBER_QUEUE = 1000
MAX_SUBSCRIBERS = 200  # open streams: each holds a queue
PER_OWNER = 5  # of them for one token: one token must not take them all
WEBHOOK_QUEUE = 1000
WEBHOOK_TRIES = 4


class Subscriber:
    def __init__(self, loop: asyncio.AbstractEventLoop, owner: str):
        self.loop = loop
        self.owner = owner
        self.queue: asyncio.Queue = asyncio.Queue(SUBSCRIBER_QUEUE)
        self.cut = False

    def offer(self, event: dict) -> None:
        """On the subscriber's loop."""
        if self.cut:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.cut = True  # the reader sees it and ends the stream; it may reconnect with Last-Event-ID


class Events:
    def __init__(self, cfg: Config):
        self._lock = threading.Lock()
        # IDs go on from one start to the next (milliseconds at start), so that a console's
        # Last-Event-ID from before a restart is older than every new event
        self._ids = itertools.count(int(time.time() * 1000))
        self._subs: set[Subscriber] = set()
        self.recent: collections.deque = collections.deque(maxlen=RECENT)
        self.counts: Counter[str] = Counter()
        self.webhook = Webhook(cfg) if cfg.alert_webhook_url else None

    def publish(self, kind: str, data: dict) -> dict:
        with self._lock:
            # the event's own fields last: data cannot overwrite its ID (the stream's order)
            event = {**data, "id": next(self._ids), "type": kind, "at": time.time()}
            self.recent.append(event)
            subs = list(self._subs)
        self.counts[kind] += 1
        for s in subs:
            try:
                s.loop.call_soon_threadsafe(s.offer, event)
            except RuntimeError:  # its loop has closed
                self.unsubscribe(s)
        if self.webhook and kind in ALERTS:
            self.webhook.send(event)
        return event

    def subscribe(self, after: int | None, owner: str) -> tuple[Subscriber, list[dict]]:
        """A new subscriber, and the kept events after ID `after` (none if None). owner:
        whose token it is; each may hold PER_OWNER streams (a console per screen)."""
        s = Subscriber(asyncio.get_running_loop(), owner)
        with self._lock:
            if len(self._subs) >= MAX_SUBSCRIBERS:
                raise OverflowError(f"{MAX_SUBSCRIBERS} event streams are open already")
            if sum(x.owner == owner for x in self._subs) >= PER_OWNER:
                raise OverflowError(f"this token has {PER_OWNER} event streams open already")
            self._subs.add(s)
            missed = [e for e in self.recent if after is not None and e["id"] > after]
        return s, missed

    def unsubscribe(self, s: Subscriber) -> None:
        with self._lock:
            self._subs.discard(s)

    def subscribers(self) -> int:
        return len(self._subs)

    def start(self) -> None:
        if self.webhook:
            self.webhook.start()

    def stop(self) -> None:
        if self.webhook:
            self.webhook.stop()


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Webhook:
    """POSTs each alert as JSON to alert_webhook_url, signed in X-Pingjia-Signature
    (HMAC-SHA256 of the body with alert_webhook_secret). A few tries with backoff, then
    counted as failed; the work order itself is in the database whatever happens here."""

    def __init__(self, cfg: Config):
        self.url = cfg.alert_webhook_url
        self.secret = cfg.alert_webhook_secret
        self.queue: queue.Queue = queue.Queue(WEBHOOK_QUEUE)
        self.counts: Counter[str] = Counter()
        self.worker = Worker("webhook", self._tick, 0)  # the tick waits on the queue itself
        self.start, self.stop = self.worker.start, self.worker.stop
        self.http = httpx.Client(timeout=5, follow_redirects=False)

    def send(self, event: dict) -> None:
        try:
            self.queue.put_nowait(event)
        except queue.Full:
            self.counts["dropped"] += 1

    def _tick(self) -> None:
        try:
            event = self.queue.get(timeout=0.5)
        except queue.Empty:
            return
        body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "X-Pingjia-Signature": signature(self.secret, body),
                   "X-Pingjia-Event": event["type"]}
        for attempt in range(WEBHOOK_TRIES):
            try:
                r = self.http.post(self.url, content=body, headers=headers)
                if r.status_code < 300:
                    self.counts["sent"] += 1
                    return
                error = f"HTTP {r.status_code}"
            except httpx.HTTPError as e:
                error = type(e).__name__
            if attempt == WEBHOOK_TRIES - 1 or self.worker.stopped.wait(2 ** attempt):
                self.counts["failed"] += 1
                log.warning("webhook: alert %s not delivered: %s", event["id"], error)
                return
