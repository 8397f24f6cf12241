"""The hall's handling of bad reviews, as it runs: an alert the moment a work order opens,
warnings and red cards as its deadlines near and pass, escalation marks, each raised once
(the order remembers what was raised, so a restart raises nothing twice)."""

from __future__ import annotations

import logging
import time

from sqlite_utils import Database

from .config import Config
from .data import open_db, transaction, workorders
from .deadlines import Calendar, Clock, RuleSet
from .errors import ConfigError
from .events import Events
from .province import Profile
from .worker import Worker

log = logging.getLogger("pingjia.workflow")

SWEEP_S = 30.0  # how often deadlines are looked at: a card is at most this late


def alert(o: dict) -> dict:
    """What an alert says of an order: the case and the staff member, never anything of
    the rater (nothing of the rater is collected)."""
    return {"work_order": o["id"], "rating_id": o["rating_id"], "window": o["window"], "staff_id": o["staff_id"],
            "staff_name": o["staff_name"], "case_no": o["case_no"], "item_name": o["item_name"],
            "level": o["level"], "reasons": (o["reason"] or "").split(",") if o["reason"] else []}


class WorkOrders:
    def __init__(self, cfg: Config, events: Events):
        self.cfg = cfg
        self.events = events
        self.calendar_error: str | None = None
        try:
            calendar = Calendar.load(cfg.home)
        except ConfigError as e:
            # a bad holidays.json must not keep the gateway (and the ratings) down: the
            # shipped calendar serves, and the error is shown until the file is fixed
            log.error("%s: using the shipped holiday calendar alone", e)
            self.calendar_error, calendar = str(e), Calendar.load()
        self.clock = Clock(RuleSet.load(cfg.work_order_rules), calendar, cfg.timezone)
        # finished orders are reported to the platform where its profile takes feedback
        self.feedback = bool(cfg.platform_url) and Profile.load(cfg.platform_profile).feedback is not None
        self._db: Database | None = None  # the sweeps' own connection, opened in their thread
        self.worker = Worker("work-order sweep", self._tick, SWEEP_S, at_once=True)  # what came due while down
        self.start, self.stop = self.worker.start, self.worker.stop
        year = time.localtime().tm_year
        missing = {year, year + 1} - self.clock.calendar.years() if time.localtime().tm_mon == 12 else \
            {year} - self.clock.calendar.years()
        if missing:
            log.warning("the holiday calendar has no holidays for %s: add them to %s/holidays.json, or deadlines "
                        "count those holidays as working days", ", ".join(map(str, sorted(missing))), cfg.home)

    def opened(self, order: dict) -> None:
        self.events.publish("bad_review", alert(order))

    def stepped(self, order: dict, step: str, actor: str) -> None:
        self.events.publish("work_order", {"work_order": order["id"], "step": step, "state": order["state"],
                                           "window": order["window"], "actor": actor})

    def cards(self, orders: list[dict], now: float) -> dict[str, int]:
        """How many of these orders show a warning, a red card, an escalation. Orders of
        the same day, kind and progress have the same timeline: each is worked out once."""
        seen: dict[tuple, dict] = {}
        out = {"warning": 0, "red": 0, "escalated": 0}
        for o in orders:
            key = (o["opened_at"] // 3600, o["reason"], o["complex"], o["state"], o["contacted_at"] is None)
            if key not in seen:
                seen[key] = self.clock.timeline(o, now)
            t = seen[key]
            if t["card"]:
                out[t["card"]] += 1
            out["escalated"] += t["escalation"] is not None
        return out

    def view(self, o: dict, now: float | None = None) -> dict:
        """An order with its deadlines and card as of now."""
        return {**o, **self.clock.timeline(o, time.time() if now is None else now)}

    def sweep(self, db, now: float) -> int:
        """Raise each warning, red card and escalation once; returns how many were raised."""
        raised = 0
        for o in workorders.unfinished(db):
            t = self.clock.timeline(o, now)
            done = set(o["alerted"].split(","))
            news = [(f"{name}:{d['card']}", "deadline", {"deadline": name, "card": d["card"], "due": d["due"]})
                    for name, d in t["deadlines"].items() if d["card"]]
            if t["escalation"]:
                news.append((f"escalated:{t['escalation']}", "escalation", {"to": t["escalation"]}))
            for key, kind, extra in news:
                if key in done:
                    continue
                with transaction(db):
                    workorders.mark_alerted(db, o["id"], key)
                self.events.publish(kind, {**alert(o), **extra})
                raised += 1
        return raised

    def _tick(self) -> None:
        self._db = self._db or open_db(self.cfg.db_path)
        self.sweep(self._db, time.time())
