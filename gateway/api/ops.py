"""Operations: the health probe, rejections, the forwarder's backlog, the gateway's state."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from .. import forwarder as forwarder_mod
from .. import store
from . import deps

public = APIRouter(prefix="/api/v1", tags=["operations"])
router = APIRouter(prefix="/api/v1", tags=["operations"])


@public.get("/health", summary="Liveness probe; needs no token")
def health(cfg=Depends(deps.cfg), g=Depends(deps.gateway)):
    return {"ok": True, "hall": cfg.hall, "broker_connected": g is not None and g.ingest.connected.is_set()}


@router.get("/rejections", summary="Refused messages: counts by reason since the store began, and the newest")
def rejections(d=Depends(deps.db), cfg=Depends(deps.cfg), reason: str | None = None,
               limit: int = Query(100, ge=1, le=1000)):
    rows = d["rejections"].rows_where("reason = ?" if reason else None, [reason] if reason else [],
                                      order_by="id desc", limit=limit)
    return {"counts": store.rejection_counts(d),
            "recent": [{**r, "at": deps.iso(r["at"], cfg.timezone)} for r in rows]}


@router.get("/forwarder", summary="What waits to go to the provincial platform, and why")
def forwarder(d=Depends(deps.db), cfg=Depends(deps.cfg), g=Depends(deps.gateway)):
    pending = next(iter(d.query(
        "select count(*) n, min(received_at) oldest, max(attempts) max_attempts from ratings "
        "where forward_state = 'pending'")))
    errors = list(d.query("select last_error, count(*) n from ratings where forward_state = 'pending' "
                          "and last_error is not null group by last_error order by n desc limit 5"))
    return {"backlog": pending["n"],
            "oldest_age_s": round(time.time() - pending["oldest"], 1) if pending["oldest"] else None,
            "max_attempts": pending["max_attempts"], "errors": errors, "states": store.forward_counts(d),
            "dead_letters": d["ratings"].count_where("forward_state = 'dead'"),
            "platform": cfg.platform_url or None, **(g.forwarder.state() if g is not None else {})}


@router.get("/forwarder/dead", summary="Ratings the platform refused for good, with its reason")
def dead_letters(d=Depends(deps.db), cfg=Depends(deps.cfg), limit: int = Query(100, ge=1, le=1000)):
    rows = d.query("select id, window, staff_id, case_no, level, attempts, last_error, received_at from ratings "
                   "where forward_state = 'dead' order by received_at limit ?", [limit])
    return [{**r, "received_at": deps.iso(r["received_at"], cfg.timezone)} for r in rows]


class Requeue(BaseModel):
    ids: list[str] | None = Field(None, max_length=10000, description="rating IDs; omit for every dead letter")


@router.post("/forwarder/requeue", summary="Send dead letters again, once their cause is corrected",
             responses=deps.errors(400, 413))
def requeue(body: Requeue, d=Depends(deps.db), g=Depends(deps.gateway)):
    n = forwarder_mod.requeue(d, body.ids)
    if g is not None:
        g.forwarder.wake.set()
    return {"requeued": n}


@router.get("/gateway", summary="The gateway's own counters since it started, and the broker's")
def gateway_state(d=Depends(deps.db), g=Depends(deps.gateway)):
    out = {"ratings": d["ratings"].count, "rejections": store.rejection_counts(d)}
    if g is not None:
        out.update(ingest_since_start=dict(g.ingest.counts), ingest_queue=g.ingest.backlog(),
                   broker_connected=g.ingest.connected.is_set(),
                   broker_dropped_messages=g.ingest.broker_dropped)
    return out
