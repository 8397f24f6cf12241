"""GET /metrics: the gateway's figures for Prometheus (prometheus-client's text format),
read at each scrape from the database and the running service. A token with `ops:read`
(a technician's or viewer's API token) is what the scrape sends as its bearer."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..alarms import KINDS
from ..data import forwarding, open_db, rejections, rows, workorders
from . import deps

router = APIRouter(tags=["operations"])


class _Hall:
    """One scrape's figures (a prometheus-client custom collector)."""

    def __init__(self, request: Request):
        self.app = request.app

    def collect(self):
        cfg, g = self.app.state.cfg, self.app.state.gateway
        db = open_db(cfg.db_path)
        try:
            yield from self._stored(db, cfg)
        finally:
            db.conn.close()
        if g is not None:
            yield _by(CounterMetricFamily, "pingjia_ingest_messages", "Messages handled since the gateway started, "
                      "by outcome", "outcome", sorted(g.ingest.counts.items()))
            yield _gauge("pingjia_ingest_queue", "Messages waiting for the ingest's writer", g.ingest.backlog())
            yield _gauge("pingjia_broker_connected", "1 while the gateway is connected to the broker",
                         int(g.ingest.connected.is_set()))
            if g.ingest.broker_dropped is not None:
                yield _gauge("pingjia_broker_dropped_messages", "The broker's own count of dropped messages",
                             g.ingest.broker_dropped)
            yield _gauge("pingjia_event_streams", "Open event streams (consoles)", g.events.subscribers())
            active = g.alarms.active()
            yield _by(GaugeMetricFamily, "pingjia_alarm", "1 while the gateway's alarm is up (alarms.py)", "name",
                      [(name, int(name in active)) for name in KINDS])

    def _stored(self, db, cfg):
        yield _by(CounterMetricFamily, "pingjia_ratings", "Ratings counted in the statistics (not repeats, not held), "
                  "by level", "level", [(r["level"], r["n"]) for r in
                                        rows(db, "select level, sum(n) n from summary_month group by level")])
        yield _by(GaugeMetricFamily, "pingjia_ratings_by_forward_state", "Ratings by forwarding state", "state",
                  sorted(forwarding.states(db).items()))
        b = forwarding.backlog(db)
        yield _gauge("pingjia_forward_backlog", "Ratings waiting to be forwarded", b["n"])
        yield _gauge("pingjia_forward_oldest_age_seconds", "Age of the oldest rating waiting to be forwarded",
                     time.time() - b["oldest"] if b["oldest"] else 0)
        now = time.time()
        counts = rows(db, "select sum(online = 1) online, sum(online = 0) offline, sum(coalesce(health_at, 0) < ?) "
                          "stale from devices where state != 'retired'", [now - 3 * cfg.heartbeat_s])[0]
        yield _by(GaugeMetricFamily, "pingjia_devices", "Devices not retired: online, offline, stale (no heartbeat "
                  "for 3 intervals)", "status", [(s, counts[s] or 0) for s in ("online", "offline", "stale")])
        yield _by(CounterMetricFamily, "pingjia_rejections", "Refused messages since the store began, by reason",
                  "reason", sorted(rejections.counts(db).items()))
        yield _by(GaugeMetricFamily, "pingjia_work_orders", "Work orders by state", "state",
                  workorders.rectification(db, None, None)["states"].items())
        counted = self.app.state.work_orders.cards(workorders.unfinished(db), now)
        yield _by(GaugeMetricFamily, "pingjia_work_orders_cards", "Unfinished work orders showing a card", "card",
                  [(card, counted[card]) for card in ("warning", "red")])


def _by(family, name: str, doc: str, label: str, values):
    """A metric with one label, a sample for each (label value, number)."""
    m = family(name, doc, labels=[label])
    for key, n in values:
        m.add_metric([key], n)
    return m


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


@router.get("/metrics", summary="Prometheus metrics", dependencies=[deps.needs("ops:read")],
            response_class=Response, responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                                                      "description": "the Prometheus text format"}})
def metrics(request: Request):
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Hall(request))  # type: ignore[arg-type]
    return Response(generate_latest(registry), media_type="text/plain; version=0.0.4; charset=utf-8")
