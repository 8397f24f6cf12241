"""The forwarder: stored ratings -> the provincial platform, over HTTP(S).

The outbox is the ratings table itself (forward_state 'pending'). A rating becomes
'forwarded' only on the platform's success reply for its ID ('accepted' or 'duplicate':
the platform is idempotent by rating ID, so sending twice is harmless). What happens
otherwise:

    timeout, dropped connection, 5xx  retry; from the third failure in a row, exponential
                                      backoff with jitter (the circuit breaker): nothing
                                      is sent but one probe a pause, up to 3 s apart
    429                               wait as long as Retry-After says
    401, 403                          a credentials problem: pause, say so, keep the ratings
    a record refused as invalid       dead letter with the platform's reason, visible in
                                      the API and re-queueable after correction
    a whole batch refused (400, 413)  its ratings are retried one by one, to find the bad one

Repeats (a second rating for a case) are stored but never forwarded as new ratings.

Where the profile has a feedback section, a finished work order (rectified, or found
invalid) is reported too, once the platform has its rating: the same outcomes, kept on
the work order (feedback_state pending, sent or dead).
"""

from __future__ import annotations

import json
import logging
import random
import sqlite3
import threading
import time

import httpx

from .alarms import Alarms
from .config import Config
from .data import forwarding, open_db, transaction, workorders
from .protocol import LEVELS, PARTS, REASONS
from .province import Profile, ProfileError, TokenBucket, signer

log = logging.getLogger("pingjia.forwarder")

RETRY_AFTER_MAX = 300.0  # the longest Retry-After we honour
BREAKER_AFTER = 3  # consecutive failed requests from which the breaker is open (backoff, probes)
BREAKER_MAX_PAUSE = 3.0  # the longest wait between probes: how late a drain may start
AUTH_PAUSE = 60.0


def platform_record(row: dict) -> dict:
    """The gateway's neutral record for a rating; province profiles map from this."""
    reasons = [r for r in (row["reason"] or "").split(",") if r]
    parts = json.loads(row["parts"]) if row.get("parts") else {}
    return {
        "id": row["id"], "dev": row["dev"], "seq": row["seq"], "case_no": row["case_no"],
        "window": row["window"], "staff_id": row["staff_id"], "staff_name": row["staff_name"],
        "item_code": row["item_code"], "item_name": row["item_name"],
        "level": row["level"], "level_name": LEVELS[row["level"]][0], "score": row["score"],
        "reasons": reasons, "reason_names": [REASONS[r] for r in reasons],
        "rated_at": row["rated_at"], "clock": row["clock"],
        # a version-2 rating's itemised parts, each a level or None (not rated): part_item, part_staff ...
        **{f"part_{p}": lv for p, lv in zip(PARTS, map(parts.get, PARTS), strict=True)},
    }


def feedback_record(o: dict) -> dict:
    """The neutral record of a finished work order; a profile's feedback section maps from it."""
    return {"rating_id": o["rating_id"], "work_order": o["id"], "case_no": o["case_no"],
            "outcome": "rectified" if o["state"] == "closed" else o["invalid_kind"], "note": o["note"] or "",
            "closed_at": o["closed_at"], "contacted_at": o["contacted_at"]}


class Forwarder:
    def __init__(self, cfg: Config, alarms: Alarms | None = None):
        self.cfg = cfg
        self.alarms = alarms or Alarms()
        self.db = open_db(cfg.db_path)
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, name="forwarder", daemon=True)
        self.last_error: str | None = None
        self.failures = 0  # consecutive failed requests
        self.paused_until = 0.0  # breaker open, Retry-After, or a credentials problem (monotonic)
        self.profile = Profile.load(cfg.platform_profile)
        self.signer = signer(self.profile, cfg.platform_app_key, cfg.platform_app_secret)
        self.bucket = TokenBucket(self.profile.rate_limit, self.profile.batch_size)
        self.http = httpx.Client(base_url=cfg.platform_url, timeout=cfg.platform_timeout_s,
                                 verify=cfg.platform_verify_tls)

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

    def state(self) -> dict:
        now = time.monotonic()
        return {"profile": self.profile.name, "consecutive_failures": self.failures,
                "breaker_open": self.failures >= BREAKER_AFTER and now < self.paused_until,
                "paused_for_s": round(max(0.0, self.paused_until - now), 1), "last_error": self.last_error}

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                busy = self.once()
            except sqlite3.OperationalError as e:
                # it cannot mark what the platform took (a full disk): stop sending, or the
                # same batch would go again and again; the ingest clears the alarm once it
                # commits again (a heartbeat is enough)
                self.alarms.set("storage", f"the forwarder cannot write to the database ({e}); forwarding waits")
                self.last_error = repr(e)[:300]
                busy = False
            except Exception as e:  # the loop must outlive any one failure
                log.exception("forwarder pass failed")
                self.last_error = repr(e)[:300]
                busy = False
            if not busy:
                self.wake.wait(min(0.5, max(0.01, self.paused_until - time.monotonic())))
                self.wake.clear()

    def once(self) -> bool:
        """Send one batch of due ratings; True if there may be more to send at once."""
        now = time.time()
        if time.monotonic() < self.paused_until or self.alarms.up("storage"):
            return False  # with no room to mark a rating forwarded, sending it would send it again
        rows = forwarding.due(self.db, now, self.profile.batch_size)
        if not rows:
            return self.feedback_once(now) if self.profile.feedback else False
        if rows[0]["solo"]:
            rows = rows[:1]  # a batch was refused whole: find the bad record on its own
        else:
            rows = [r for r in rows if not r["solo"]]
        try:
            records = [self.profile.record(platform_record(r), self.cfg.platform_settings, self.cfg.timezone)
                       for r in rows]
        except ProfileError as e:  # a settings problem: nothing to do until it is fixed
            self._pause(AUTH_PAUSE, str(e))
            return False
        bad = {r["id"]: "; ".join(p) for r, rec in zip(rows, records, strict=True)
               if (p := self.profile.problems(rec))}
        if bad:
            self._dead(bad, prefix="refused before sending: ")
            rows = [r for r in rows if r["id"] not in bad]
            records = [rec for rec in records if rec[self.profile.id_field] not in bad]
            if not rows:
                return True
        while (wait := self.bucket.take(len(rows))) > 0:  # keep under the platform's rate limit
            if self.stopping.wait(wait):
                return False
        body = self.profile.adapter.body(records)
        headers = {"Content-Type": "application/json; charset=utf-8",
                   **self.signer.headers("POST", self.profile.path, body)}
        try:
            resp = self.http.post(self.profile.path, content=body, headers=headers)
        except httpx.HTTPError as e:
            self._failed(rows, f"{type(e).__name__}: {e}")
            return True  # at once, unless _failed paused us
        return self._answer(rows, resp)

    def feedback_once(self, now: float) -> bool:
        """Report one batch of finished work orders; True if there may be more."""
        fb = self.profile.feedback
        assert fb is not None
        orders = workorders.feedback_due(self.db, now, fb.batch_size)
        if not orders:
            return False
        try:
            records = {o["id"]: fb.record(feedback_record(o), self.cfg.platform_settings, self.cfg.timezone)
                       for o in orders}
        except ProfileError as e:
            self._pause(AUTH_PAUSE, str(e))
            return False
        with transaction(self.db):
            for o in orders:
                if p := fb.problems(records[o["id"]]):
                    workorders.feedback_failed(self.db, o["id"], "refused before sending: " + "; ".join(p), None)
                    del records[o["id"]]
        if not records:
            return True
        while (wait := self.bucket.take(len(records))) > 0:
            if self.stopping.wait(wait):
                return False
        body = fb.adapter.body(list(records.values()))
        headers = {"Content-Type": "application/json; charset=utf-8", **self.signer.headers("POST", fb.path, body)}
        try:
            resp = self.http.post(fb.path, content=body, headers=headers)
            results = fb.adapter.results(resp.json()) if resp.status_code < 300 else None
            error = None if results is not None else f"HTTP {resp.status_code}: {resp.text[:200]}"
        except (httpx.HTTPError, ValueError) as e:
            results, error = None, f"{type(e).__name__}: {e}"[:300]
        by_rating = {records[o["id"]][fb.id_field]: o for o in orders if o["id"] in records}
        with transaction(self.db):
            sent = [o["id"] for rid, o in by_rating.items()
                    if results and results.get(rid, {}).get("status") in ("accepted", "duplicate")]
            if sent:
                workorders.feedback_sent(self.db, sent)
            for rid, o in by_rating.items():
                if o["id"] in sent:
                    continue
                x = (results or {}).get(rid)
                if x is not None and x.get("status") == "invalid":
                    workorders.feedback_failed(self.db, o["id"], f"invalid: {x.get('error')}", None)
                else:
                    delay = min(forwarding.BACKOFF_MAX, forwarding.BACKOFF_MIN * 2 ** min(o["feedback_attempts"], 16))
                    workorders.feedback_failed(self.db, o["id"], error or "the reply did not mention it",
                                               time.time() + delay * random.uniform(0.5, 1.0))
        if error:
            self.last_error = error
            log.warning("rectification feedback not delivered: %s", error)
            return False
        return True

    def _answer(self, rows: list[dict], resp: httpx.Response) -> bool:
        code = resp.status_code
        if code == 429:
            retry = _retry_after(resp.headers.get("retry-after"))
            self._pause(retry, f"rate limited by the platform: waiting {retry:.0f} s")
            return False
        if code in (401, 403):
            self._pause(AUTH_PAUSE, f"the platform refused our credentials ({code}): check platform_app_key/secret")
            return False
        if code in (400, 413, 422):
            if len(rows) > 1:
                self._solo(rows, f"batch refused ({code}): {resp.text[:200]}")
                return True
            self._dead({rows[0]["id"]: f"refused ({code}): {resp.text[:300]}"})
            return True
        if code >= 300:
            self._failed(rows, f"HTTP {code}: {resp.text[:200]}")
            return True
        try:
            results = self.profile.adapter.results(resp.json())
        except ValueError:
            self._failed(rows, f"unreadable reply: {resp.text[:200]}")
            return True
        self.failures = 0
        self.last_error = None
        # only this batch's ratings: a reply naming others (a faulty or hostile platform)
        # must not mark a rating it was never sent
        sent = {r["id"] for r in rows}
        done = [rid for rid in sent if results.get(rid, {}).get("status") in ("accepted", "duplicate")]
        dead = {rid: f"invalid: {x.get('error')}"[:500] for rid, x in results.items()
                if rid in sent and x.get("status") == "invalid"}
        if done:
            forwarding.forwarded(self.db, done, time.time())
        if dead:
            self._dead(dead)
        missed = [r for r in rows if r["id"] not in done and r["id"] not in dead]
        if missed:
            self._retry_later(missed, "the platform's reply did not mention these ratings")
        return True

    # -- outcomes ----------------------------------------------------------------------
    def _failed(self, rows: list[dict], error: str) -> None:
        """A request failed as a whole (no answer, 5xx): the platform's trouble, not these
        ratings'. They stay first in line; the backoff is the platform's: none after one or
        two failures (stray errors cost nothing: at 10 % errors, three in a row happen once
        in a thousand requests), then exponential with jitter up to BREAKER_MAX_PAUSE, one
        probe a pause while the platform is down."""
        self.bucket.refund(len(rows))  # the platform did no work for them
        self.failures += 1
        self.last_error = error[:300]
        log.warning("platform push failed (%d in a row): %s", self.failures, self.last_error)
        forwarding.failed(self.db, [r["id"] for r in rows], self.last_error)
        if self.failures >= BREAKER_AFTER:
            pause = min(BREAKER_MAX_PAUSE, 0.5 * 2.0 ** (self.failures - BREAKER_AFTER))
            self.paused_until = time.monotonic() + pause * random.uniform(0.5, 1.0)

    def _pause(self, seconds: float, why: str) -> None:
        self.paused_until = time.monotonic() + seconds
        self.last_error = why
        log.warning(why)

    def _retry_later(self, rows: list[dict], error: str) -> None:
        forwarding.retry_later(self.db, rows, error[:300])

    def _solo(self, rows: list[dict], error: str) -> None:
        forwarding.solo(self.db, [r["id"] for r in rows], error[:300])

    def _dead(self, reasons: dict[str, str], prefix: str = "") -> None:
        log.warning("%d ratings refused by the platform for good (dead letters)", len(reasons))
        forwarding.dead(self.db, {rid: prefix + why for rid, why in reasons.items()})


def _retry_after(value: str | None) -> float:
    if value is None:
        return 1.0
    try:
        return min(RETRY_AFTER_MAX, max(0.1, float(value)))
    except (TypeError, ValueError):
        return 1.0
