"""Firmware builds and their rollouts over the air (gateway/ota.py runs them)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from pydantic import BaseModel, Field

from ..data import audit, devices, firmware, transaction
from . import deps

router = APIRouter(prefix="/api/v1", tags=["firmware"])
HASH = r"^[0-9a-f]{64}$"
MAX_UPLOAD = 4_000_000  # a zipped build (guard.py lets this path's body be this large)


class NewRollout(BaseModel):
    hash: str = Field(pattern=HASH, description="the build's content hash")
    devices: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")]] | None = Field(
        None, max_length=10000, description="the devices to update; omit for every active one")
    canary: int = Field(1, ge=1, le=100, description="devices in the first stage")
    shares: list[Annotated[float, Field(gt=0, le=1)]] = Field(
        [0.25, 1.0], max_length=10, description="the share of all devices updated after each later stage")


RolloutId = Annotated[int, Path(ge=1, le=2**31)]


def _view(r: dict, cfg) -> dict:
    for k in ("created_at", "updated_at"):
        r[k] = deps.iso(r[k], cfg.timezone)
    for d in r["devices"]:
        d["sent_at"] = deps.iso(d["sent_at"], cfg.timezone)
        d["updated_at"] = deps.iso(d["updated_at"], cfg.timezone)
    return r


def _wake(g) -> None:
    if g is not None:
        g.rollouts.wake()


@router.get("/firmware", summary="The firmware builds the gateway keeps", dependencies=[deps.needs("devices:read")])
def builds(d=Depends(deps.db), cfg=Depends(deps.cfg)):
    return [{**b, "uploaded_at": deps.iso(b["uploaded_at"], cfg.timezone)} for b in firmware.listed(d)]


@router.post("/firmware", status_code=201, responses=deps.errors(400, 409, 413),
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/zip": {"schema": {"type": "string", "format": "binary"}}}}},
             summary="Keep a firmware build: the body is a zip of a `pingjia firmware build` folder; every file "
                     "is checked against its manifest")
async def upload(request: Request, d=Depends(deps.db), cfg=Depends(deps.cfg), who=deps.needs("firmware:upload")):
    data = await request.body()
    if len(data) > MAX_UPLOAD:
        raise HTTPException(413, f"a build may be {MAX_UPLOAD} bytes zipped")
    try:
        kept = firmware.store(d, cfg.home, data, who.name, time.time())
    except firmware.BadBuild as e:
        raise HTTPException(400, f"not a usable build: {e}") from None
    with transaction(d):
        audit.record(d, who.name, "firmware.upload", kept["hash"], time.time(), version=kept["version"])
    return {**kept, "uploaded_at": deps.iso(kept["uploaded_at"], cfg.timezone)}


@router.delete("/firmware/{h}", summary="Remove a kept build (not one a rollout still holds)",
               responses=deps.errors(404, 409))
def remove(h: Annotated[str, Path(pattern=HASH)], d=Depends(deps.db), cfg=Depends(deps.cfg),
           who=deps.needs("firmware:upload")):
    firmware.remove(d, cfg.home, h)
    with transaction(d):
        audit.record(d, who.name, "firmware.remove", h, time.time())
    return {"removed": h}


@router.get("/rollouts", summary="Rollouts, newest first, with each device's state",
            dependencies=[deps.needs("devices:read")])
def rollouts(d=Depends(deps.db), cfg=Depends(deps.cfg)):
    return [_view(r, cfg) for r in firmware.rollouts(d)]


@router.get("/rollouts/{rid}", summary="One rollout", responses=deps.errors(404),
            dependencies=[deps.needs("devices:read")])
def rollout(rid: RolloutId, d=Depends(deps.db), cfg=Depends(deps.cfg)):
    return _view(firmware.rollout(d, rid), cfg)


@router.post("/rollouts", status_code=201, responses=deps.errors(400, 404, 409, 413),
             summary="Roll a build out in stages: a canary, then each share; it halts by itself when a device "
                     "rolls back")
def start(body: NewRollout, d=Depends(deps.db), cfg=Depends(deps.cfg), g=Depends(deps.gateway),
          who=deps.needs("devices:write")):
    build = firmware.get(d, body.hash)
    model = firmware.model_of(build) if build else None  # no devices named: every active one of the build's model
    devs = body.devices if body.devices is not None else [r["dev"] for r in devices.listed(d, "active", None)
                                                           if r["model"] == model]
    now = time.time()
    r = firmware.start(d, body.hash, devs, body.canary, body.shares, who.name, now)
    with transaction(d):
        audit.record(d, who.name, "rollout.start", str(r["id"]), now, hash=body.hash, devices=len(devs))
    _wake(g)
    return _view(r, cfg)


def _act(action: str, state: str, allowed: tuple):
    def act(rid: RolloutId, d=Depends(deps.db), cfg=Depends(deps.cfg), g=Depends(deps.gateway),
            who=deps.needs("devices:write")):
        now = time.time()
        with transaction(d):
            if action == "resume":  # the devices that failed are tried again
                d.execute("update rollout_devices set state = 'waiting', sent_at = null, updated_at = ? "
                          "where rollout_id = ? and state in ('failed', 'rolled_back')", [now, rid])
            r = firmware.set_state(d, rid, state, now, f"{action} by {who.name}", allowed)
            audit.record(d, who.name, f"rollout.{action}", str(rid), now)
        _wake(g)
        return _view(r, cfg)
    act.__name__ = f"rollout_{action}"
    return act


for _action, _state, _allowed, _summary in (
        ("halt", "halted", ("running",), "Stop sending the build (devices already updating finish)"),
        ("resume", "running", ("halted",), "Go on; the devices that failed or rolled back are tried again"),
        ("cancel", "cancelled", ("running", "halted"), "End the rollout")):
    router.post(f"/rollouts/{{rid}}/{_action}", summary=_summary, responses=deps.errors(404, 409))(
        _act(_action, _state, _allowed))
