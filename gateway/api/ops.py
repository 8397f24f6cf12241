"""Operations: the health probe, rejections, the forwarder's backlog, the gateway's state."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from ..data import audit, forwarding, ratings, rejections, transaction
from . import deps

public = APIRouter(prefix="/api/v1", tags=["operations"])
router = APIRouter(prefix="/api/v1", tags=["operations"])
ops_readers = [deps.needs("ops:read")]


@public.get("/health", summary="Liveness probe; needs no token")
def health(cfg=Depends(deps.cfg), g=Depends(deps.gateway)):
    return {"ok": True, "hall": cfg.hall, "broker_connected": g is not None and g.ingest.connected.is_set(),
            "alarms": sorted(g.alarms.active()) if g is not None else []}


@router.get("/rejections", summary="Refused messages: counts by reason since the store began, and the newest",
            dependencies=ops_readers)
def rejections_view(d=Depends(deps.db), cfg=Depends(deps.cfg), reason: str | None = Query(None, max_length=40),
                    limit: int = Query(100, ge=1, le=1000)):
    return {"counts": rejections.counts(d),
            "recent": [{**r, "at": deps.iso(r["at"], cfg.timezone)} for r in rejections.recent(d, reason, limit)]}


@router.get("/forwarder", summary="What waits to go to the provincial platform, and why", dependencies=ops_readers)
def forwarder(d=Depends(deps.db), cfg=Depends(deps.cfg), g=Depends(deps.gateway)):
    b = forwarding.backlog(d)
    return {"backlog": b["n"], "oldest_age_s": round(time.time() - b["oldest"], 1) if b["oldest"] else None,
            "max_attempts": b["max_attempts"], "errors": b["errors"], "states": b["states"],
            "dead_letters": b["states"].get("dead", 0),
            "platform": cfg.platform_url or None, **(g.forwarder.state() if g is not None else {})}


@router.get("/forwarder/dead", summary="Ratings the platform refused for good, with its reason",
            dependencies=ops_readers)
def dead_letters(d=Depends(deps.db), cfg=Depends(deps.cfg), limit: int = Query(100, ge=1, le=1000)):
    return [{**r, "received_at": deps.iso(r["received_at"], cfg.timezone)} for r in forwarding.dead_letters(d, limit)]


class Requeue(BaseModel):
    ids: list[str] | None = Field(None, max_length=10000, description="rating IDs; omit for every dead letter")


@router.post("/forwarder/requeue", summary="Send dead letters again, once their cause is corrected",
             responses=deps.errors(400, 413))
def requeue(body: Requeue, d=Depends(deps.db), g=Depends(deps.gateway), who=deps.needs("forwarder:requeue")):
    with transaction(d):
        n = forwarding.requeue(d, body.ids)
        audit.record(d, who.name, "forwarder.requeue", None, time.time(), ids=len(body.ids) if body.ids else "all",
                     requeued=n)
    if g is not None:
        g.forwarder.wake.set()
    return {"requeued": n}


@router.get("/gateway", summary="The gateway's alarms, its own counters since it started, and the broker's",
            dependencies=ops_readers)
def gateway_state(d=Depends(deps.db), cfg=Depends(deps.cfg), g=Depends(deps.gateway)):
    out = {"ratings": ratings.count(d), "rejections": rejections.counts(d)}
    if g is not None:
        alarms = {k: {**v, "since": deps.iso(v["since"], cfg.timezone)} for k, v in g.alarms.active().items()}
        out.update(alarms=alarms, ingest_since_start=dict(g.ingest.counts), ingest_queue=g.ingest.backlog(),
                   broker_connected=g.ingest.connected.is_set(),
                   broker_dropped_messages=g.ingest.broker_dropped)
    return out
