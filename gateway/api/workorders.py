"""Work orders (差评工单): the list with deadlines and cards, one order with its steps,
taking a step, the rectification rate, the overdue list and the staff watch list; and the
event stream the alerts come on."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from .. import auth
from ..data import audit, transaction, workorders
from ..errors import Conflict
from ..workflow import WorkOrders
from . import deps

router = APIRouter(prefix="/api/v1", tags=["work orders"])
readers = [deps.needs("read")]
OrderPath = Annotated[int, Path(ge=1, le=2**62, description="the work order's number")]
State = Literal["open", "accepted", "contacted", "rectifying", "closed", "invalid"]
RECHECK_S = 5.0  # how often an open stream's token is checked again, and a keepalive sent when idle
NOTE_PATTERN = r"^[^\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]+$"  # text of several lines: protocol's text rule, but \n


class Step(BaseModel):
    step: Literal["accept", "contact", "rectify", "close", "invalid"] = Field(
        description="accept -> contact (the citizen was contacted) -> rectify -> close; or invalid at any point")
    note: Annotated[str, Field(min_length=1, max_length=2000, pattern=NOTE_PATTERN)] | SkipJsonSchema[None] = Field(
        None, description="what was done; required to close (the rectification) and for invalid (why)")
    kind: Literal["mistaken", "malicious"] | SkipJsonSchema[None] = Field(
        None, description="for invalid, and only for it: 误评 or 恶意评价")
    complex: bool | SkipJsonSchema[None] = Field(
        None, description="an admin's decision that the case is complex: the longer fix deadline applies; "
                          "only before the fix deadline has passed")
    model_config = {"json_schema_extra": {"allOf": [
        {"if": {"properties": {"step": {"enum": ["close", "invalid"]}}}, "then": {"required": ["note"]}},
        {"if": {"properties": {"step": {"const": "invalid"}}}, "then": {"required": ["kind"]},
         "else": {"not": {"required": ["kind"]}}},
    ]}}

    @model_validator(mode="after")
    def what_each_step_needs(self):
        if self.note is not None and not self.note.strip():
            raise ValueError("a note says something: it is blank")
        if self.step in ("close", "invalid") and not self.note:
            raise ValueError(f"{self.step} needs a note: the rectification, or why the review is invalid")
        if (self.step == "invalid") != (self.kind is not None):
            raise ValueError("kind (mistaken or malicious) goes with invalid, and only with it")
        return self


def workflow(request: Request) -> WorkOrders:
    return request.app.state.work_orders


def _view(o: dict, wf: WorkOrders, tz: str, now: float) -> dict:
    v = wf.view(o, now)
    for k in ("opened_at", "contacted_at", "closed_at", "updated_at", "next_feedback_at"):
        v[k] = deps.iso(v[k], tz)
    for d in v["deadlines"].values():
        d["due"] = deps.iso(d["due"], tz)
    v["reasons"] = v.pop("reason").split(",") if v.get("reason") else []
    v.pop("alerted", None)
    return v


@router.get("/work-orders", summary="Work orders, oldest first (or newest), with their deadlines and cards",
            dependencies=readers)
def list_orders(d=Depends(deps.db), cfg=Depends(deps.cfg), wf=Depends(workflow), state: State | None = None,
                window: str | None = Query(None, max_length=32), staff_id: str | None = Query(None, max_length=32),
                since: deps.Since = None, until: deps.Until = None,
                card: Literal["warning", "red"] | None = Query(None, description="only orders showing this card"),
                newest_first: bool = Query(False, description="the newest first (a console's list)"),
                limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0, le=10**9)):
    now = time.time()
    s, u = deps.to_epoch(since, cfg.timezone), deps.to_epoch(until, cfg.timezone, end=True)
    if card is None:
        found = workorders.listed(d, state, window, staff_id, s, u, limit, offset, newest_first=newest_first)
        return [_view(o, wf, cfg.timezone, now) for o in found]
    # a card is a matter of now, not of a column: select in Python among the unfinished (few)
    found = [o for o in workorders.listed(d, state, window, staff_id, s, u, unfinished=True, newest_first=newest_first)
             if wf.view(o, now)["card"] == card]
    return [_view(o, wf, cfg.timezone, now) for o in found[offset:offset + limit]]


@router.get("/work-orders/summary", summary="整改率 (rectification rate), counts by state, cards, escalations",
            dependencies=readers)
def summary(d=Depends(deps.db), cfg=Depends(deps.cfg), wf=Depends(workflow), since: deps.Since = None,
            until: deps.Until = None, window: str | None = Query(None, max_length=32)):
    now = time.time()
    out = workorders.rectification(d, deps.to_epoch(since, cfg.timezone), deps.to_epoch(until, cfg.timezone, end=True),
                                   window)
    cards = wf.cards(workorders.unfinished(d, window), now)
    out.update(warning=cards["warning"], red=cards["red"], escalated=cards["escalated"],
               rules={"name": wf.clock.rules.name, "title": wf.clock.rules.title},
               calendar_error=wf.calendar_error)
    return out


@router.get("/work-orders/{oid}", summary="One work order with every step", responses=deps.errors(404),
            dependencies=readers)
def get_order(oid: OrderPath, d=Depends(deps.db), cfg=Depends(deps.cfg), wf=Depends(workflow)):
    v = _view(workorders.get(d, oid), wf, cfg.timezone, time.time())
    v["steps"] = [{**s, "at": deps.iso(s["at"], cfg.timezone)} for s in workorders.steps(d, oid)]
    return v


@router.post("/work-orders/{oid}/steps", summary="Take the next step on a work order",
             responses=deps.errors(400, 404, 409, 413))
def take_step(oid: OrderPath, body: Step, d=Depends(deps.db), cfg=Depends(deps.cfg), wf=Depends(workflow),
              who=deps.needs("work_orders:act")):
    o = workorders.get(d, oid)
    if not who.acts_on(o["window"]):
        raise HTTPException(403, f"window {o['window']} is not among this supervisor's windows")
    now = time.time()
    if body.complex is not None:
        # it moves a deadline: an admin's decision, and not one that makes a missed deadline met
        if who.role != "admin":
            raise HTTPException(403, "only an admin marks a case complex")
        if wf.view({**o, "complex": 0}, now)["deadlines"]["fix"]["due"] <= now:
            raise Conflict(f"work order {oid}'s fix deadline has passed: too late to mark it complex")
    with transaction(d):
        o = workorders.step(d, oid, body.step, who.name, now, body.note, body.kind, body.complex, wf.feedback)
        audit.record(d, who.name, f"work_order.{body.step}", str(oid), now, kind=body.kind, complex=body.complex)
    wf.stepped(o, body.step, who.name)
    return _view(o, wf, cfg.timezone, now)


@router.get("/staff/watch", summary="Staff with 3 or more valid bad reviews in 7 days or in a year",
            dependencies=readers)
def watch(d=Depends(deps.db)):
    return workorders.watch(d, time.time())


@router.post("/events/ticket", summary="A single-use ticket for GET /api/v1/events?ticket=..., for a browser's "
             "EventSource, which sends no Authorization header; good for 30 s", dependencies=readers)
def ticket(request: Request, a=Depends(deps.authenticator)):
    return {"ticket": a.ticket(request.headers.get("authorization", "").encode()), "expires_in_s": auth.TICKET_S}


@router.get("/events", summary="The event stream (server-sent events): alerts and work-order steps as they happen",
            dependencies=readers, response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                             "description": "one `event:` per alert or step; a comment every 5 s keeps it open"},
                       **deps.errors(503)})
async def events(request: Request, g=Depends(deps.gateway), who=Depends(deps.principal),
                 a=Depends(deps.authenticator),
                 ticket: str | SkipJsonSchema[None] = Query(None, max_length=64, description="instead of the "
                                                            "Authorization header: a ticket from /events/ticket"),
                 last_event_id: Annotated[int | SkipJsonSchema[None], Header(ge=0, le=2**62)] = None):
    if g is None:
        raise HTTPException(503, "no event stream: the gateway is not running in this process")
    try:
        sub, missed = g.events.subscribe(last_event_id, owner=who.token_id or who.name)
    except OverflowError as e:
        raise HTTPException(503, str(e)) from None
    header = request.headers.get("authorization", "").encode()
    client = request.client.host if request.client else None
    server = request.scope.get("server")

    def still_let_in() -> bool:
        """A stream outlives its request: the token is checked again as it goes, so that a
        revoked token or a disabled account stops getting alerts at once."""
        p = a.resolve(header, client, server[0] if server else None)
        return p is not None and p.can("read")

    async def stream():
        checked = time.monotonic()
        try:
            yield ": connected\n\n"
            for e in missed:
                yield _sse(e)
            while not sub.cut and not await request.is_disconnected():
                try:
                    e = await asyncio.wait_for(sub.queue.get(), RECHECK_S)
                except TimeoutError:
                    e = None
                if time.monotonic() - checked >= RECHECK_S or e is not None:
                    if not still_let_in():
                        return
                    checked = time.monotonic()
                yield _sse(e) if e is not None else ": keepalive\n\n"
        finally:
            g.events.unsubscribe(sub)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _sse(e: dict) -> str:
    return f"id: {e['id']}\nevent: {e['type']}\ndata: {json.dumps(e, ensure_ascii=False)}\n\n"
