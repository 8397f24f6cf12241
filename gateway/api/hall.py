"""What the hall's business (queuing) system tells the gateway: staff sign-in and
sign-out at a window, and each completed case. Every change is pushed to the window's
devices at once as their retained session."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from ..data import audit, devices, hall, photos, transaction
from ..protocol import TEXT_PATTERN
from . import deps

router = APIRouter(prefix="/api/v1", tags=["hall"])  # the admins' views
# what the hall business system calls (and admins may)
business = APIRouter(prefix="/api/v1", tags=["hall"], dependencies=[deps.needs("hall:report")])

NAME = r"^[A-Za-z0-9_-]{1,32}$"
CODE = r"^[A-Za-z0-9._-]{1,64}$"
WindowPath = Annotated[str, Path(pattern=NAME, description="the window, e.g. W01")]


class SignIn(BaseModel):
    staff_id: str = Field(pattern=NAME, description="工号, the staff ID")
    staff_name: str = Field(min_length=1, max_length=32, pattern=TEXT_PATTERN,
                            description="the staff member's name; no control characters")


class Item(BaseModel):
    code: str = Field(pattern=CODE, description="事项编码")
    name: str = Field(min_length=1, max_length=100, pattern=TEXT_PATTERN, description="事项名称")


class Case(BaseModel):
    serial: str = Field(pattern=r"^[A-Za-z0-9._-]{1,50}$", description="办件流水号, the case serial number")
    window: str = Field(pattern=NAME)
    # one item (item_code and item_name), or a batch case (items): the schema says so too
    # (None is only "not given": SkipJsonSchema keeps null out of the schema, as it is out of the API)
    item_code: Annotated[str, Field(pattern=CODE)] | SkipJsonSchema[None] = None
    item_name: Annotated[str, Field(min_length=1, max_length=100, pattern=TEXT_PATTERN)] | SkipJsonSchema[None] = None
    items: Annotated[list[Item], Field(min_length=1, max_length=20)] | SkipJsonSchema[None] = Field(
        None, description="a batch case: several items under one serial number, rated once")
    model_config = {"json_schema_extra": {"oneOf": [
        {"required": ["item_code", "item_name"], "not": {"required": ["items"]}},
        {"required": ["items"], "not": {"anyOf": [{"required": ["item_code"]}, {"required": ["item_name"]}]}},
    ]}}

    @model_validator(mode="after")
    def one_way_to_name_items(self):
        if self.items is None and not (self.item_code and self.item_name):
            raise ValueError("give item_code and item_name, or items")
        if self.items is not None and (self.item_code or self.item_name):
            raise ValueError("give either item_code and item_name, or items, not both")
        return self

    def item_list(self) -> list[tuple[str, str]]:
        if self.items is not None:
            return [(i.code, i.name) for i in self.items]
        assert self.item_code and self.item_name  # one_way_to_name_items
        return [(self.item_code, self.item_name)]


def _push(g, window: str, what: str) -> None:
    """The window's devices learn the change at once, and so does every open console."""
    if g is not None:
        g.ingest.publish_session(window)
        g.events.publish("window", {"window": window, "what": what})


@business.post("/windows/{window}/sign-in", summary="A staff member signs in at a window",
               responses=deps.errors(400, 413))
def sign_in(window: WindowPath, body: SignIn, d=Depends(deps.db), g=Depends(deps.gateway)):
    s = hall.sign_in(d, window, body.staff_id, body.staff_name, time.time())
    _push(g, window, "sign-in")
    return s


@business.post("/windows/{window}/sign-out", summary="The staff member at a window signs out",
               responses=deps.errors(404))
def sign_out(window: WindowPath, d=Depends(deps.db), g=Depends(deps.gateway)):
    hall.sign_out(d, window, time.time())
    _push(g, window, "sign-out")
    return {"window": window, "signed_in": False}


StaffPath = Annotated[str, Path(pattern=NAME, description="工号, the staff ID")]
IMAGE = {"requestBody": {"required": True, "content": {
    t: {"schema": {"type": "string", "format": "binary"}} for t in ("image/jpeg", "image/png")}}}


def _push_staff(d, g, staff_id: str) -> None:
    """The tablets at the windows where staff_id is signed in learn of the photo."""
    for w in {s["window"] for s in hall.open_sessions(d) if s["staff_id"] == staff_id}:
        _push(g, w, "photo")


@business.put("/staff/{staff_id}/photo", responses=deps.errors(400, 413), openapi_extra=IMAGE,
              summary="The staff member's photo, a JPEG or PNG: tablets show it beside the case (cropped to a "
                      "square, 96x96)")
async def put_photo(staff_id: StaffPath, request: Request, d=Depends(deps.db), g=Depends(deps.gateway),
                    who=deps.needs("hall:report")):
    try:
        p = photos.put(d, staff_id, await request.body(), who.name, time.time())
    except photos.BadPhoto as e:
        raise HTTPException(400, str(e)) from None
    with transaction(d):
        audit.record(d, who.name, "staff.photo", staff_id, time.time(), hash=p["hash"])
    _push_staff(d, g, staff_id)
    return p


@business.delete("/staff/{staff_id}/photo", responses=deps.errors(404), summary="Remove the staff member's photo")
def delete_photo(staff_id: StaffPath, d=Depends(deps.db), g=Depends(deps.gateway), who=deps.needs("hall:report")):
    photos.remove(d, staff_id)
    with transaction(d):
        audit.record(d, who.name, "staff.photo_removed", staff_id, time.time())
    _push_staff(d, g, staff_id)
    return {"staff_id": staff_id, "photo": False}


@router.get("/staff/{staff_id}/photo", responses={**deps.errors(404), 200: {"content": {"image/png": {}}}},
            response_class=Response, dependencies=[deps.needs("read")],
            summary="The staff member's photo as the tablets show it (PNG, 96x96)")
def get_photo(staff_id: StaffPath, d=Depends(deps.db)):
    p = photos.get(d, staff_id)
    if p is None:
        raise HTTPException(404, f"no photo of staff {staff_id}")
    return Response(photos.png(p["pixels"]), media_type="image/png")


@router.get("/windows", summary="Each window: who is signed in, its devices, its latest case",
            dependencies=[deps.needs("devices:read")])
def windows(d=Depends(deps.db), cfg=Depends(deps.cfg)):
    now = time.time()
    out = []
    for w in hall.windows(d):
        s = hall.session_at(d, w, now)
        c = hall.latest_case(d, w)
        out.append({"window": w, "staff_id": s and s["staff_id"], "staff_name": s and s["staff_name"],
                    "signed_in_at": deps.iso(s["started_at"] if s else None, cfg.timezone),
                    "devices": [x["dev"] for x in devices.at_window(d, w)],
                    "latest_case": c and {"serial": c["serial"], "item_name": c["item_name"],
                                          "rated": bool(c["rating_id"])}})
    return out


OUTBOX_RISES_RED = 3  # heartbeats in a row with an outbox not shrinking: its ratings are not getting out


@router.get("/hall/now", summary="The hall at a glance: each window's staff, current case and devices, with the "
            "red cards (a device offline or stale, an outbox that keeps growing)",
            dependencies=[deps.needs("devices:read")])
def hall_now(d=Depends(deps.db), cfg=Depends(deps.cfg)):
    now = time.time()
    out: list[dict] = []
    n_devices = 0
    for w in hall.windows(d):
        s = hall.session_at(d, w, now)
        c = hall.current_case(d, w, s)
        devs = []
        for r in devices.at_window(d, w):
            h = devices.health(r) or {}
            stale = (r["health_at"] or 0) < now - 3 * cfg.heartbeat_s
            cards = [why for why, on in (("offline", not r["online"]), ("stale", stale),
                                         ("outbox_growing", r["outbox_rises"] >= OUTBOX_RISES_RED)) if on]
            devs.append({"dev": r["dev"], "model": r["model"], "state": r["state"], "online": bool(r["online"]),
                         "stale": stale, "last_heartbeat": deps.iso(r["health_at"], cfg.timezone),
                         "fw": r["fw"], **{k: h.get(k) for k in ("rssi", "outbox", "oldest_s", "boot", "reset")},
                         "cards": cards})
        n_devices += len(devs)
        out.append({"window": w, "staff_id": s and s["staff_id"], "staff_name": s and s["staff_name"],
                    "case": c and {"serial": c["serial"], "item_name": c["item_name"], "rated": bool(c["rating_id"]),
                                   "completed_at": deps.iso(c["completed_at"], cfg.timezone)},
                    "devices": devs, "red": not devs or any(x["cards"] for x in devs)})
    return {"at": deps.iso(now, cfg.timezone), "windows": out,
            "red": sum(1 for w in out if w["red"]), "devices": n_devices}


@router.get("/sessions", summary="Staff sessions, newest first", dependencies=[deps.needs("read")])
def sessions(d=Depends(deps.db), cfg=Depends(deps.cfg), window: str | None = Query(None, max_length=32),
             limit: int = Query(100, ge=1, le=1000)):
    return [{**r, "started_at": deps.iso(r["started_at"], cfg.timezone),
             "ended_at": deps.iso(r["ended_at"], cfg.timezone)} for r in hall.sessions(d, window, limit)]


@business.post("/cases", status_code=201, summary="A case was completed at a window",
               responses=deps.errors(400, 409, 413))
def case_completed(body: Case, d=Depends(deps.db), g=Depends(deps.gateway), cfg=Depends(deps.cfg)):
    row = hall.complete_case(d, body.serial, body.window, body.item_list(), time.time(), cfg.utc_offset_s)
    _push(g, body.window, "case")
    return row


@router.get("/cases", summary="Cases, newest first; rated=false lists the unrated ones",
            dependencies=[deps.needs("read")])
def cases(d=Depends(deps.db), cfg=Depends(deps.cfg), window: str | None = Query(None, max_length=32),
          rated: bool | None = None, since: deps.Since = None, until: deps.Until = None,
          limit: int = Query(100, ge=1, le=1000)):
    found = hall.cases(d, window, rated, deps.to_epoch(since, cfg.timezone),
                       deps.to_epoch(until, cfg.timezone, end=True), limit)
    return [{**r, "completed_at": deps.iso(r["completed_at"], cfg.timezone)} for r in found]


@router.get("/cases/rated-share", summary="主动评价率: the share of completed cases that were rated, per window, "
            "staff member or item", dependencies=[deps.needs("read")])
def rated_share(d=Depends(deps.db), cfg=Depends(deps.cfg), since: deps.Since = None, until: deps.Until = None,
                by: Literal["window", "staff", "item"] = Query("window", description="window, staff or item"),
                window: str | None = Query(None, max_length=32)):
    return hall.rated_share(d, deps.to_epoch(since, cfg.timezone), deps.to_epoch(until, cfg.timezone, end=True),
                            deps.days(since, until), by, window)
