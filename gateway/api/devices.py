"""The device registry and each device's health."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from ..data import devices
from ..errors import NotFound
from . import deps

router = APIRouter(prefix="/api/v1/devices", tags=["devices"])

NAME = r"^[A-Za-z0-9_-]{1,32}$"
DevPath = Annotated[str, Path(pattern=NAME, description="the device ID")]
SECRETS = ("key", "pw_hash", "prev_key")  # never leave the gateway after provisioning


class NewDevice(BaseModel):
    dev: str = Field(pattern=NAME)
    window: str = Field(pattern=NAME)
    model: str = Field("five-button", pattern="^(five-button|tablet)$")


class Move(BaseModel):
    window: str = Field(pattern=NAME)


class Rotate(BaseModel):
    grace_hours: float = Field(168, ge=0, le=24 * 90,
                               description="how long ratings signed with the old key still verify")


def view(r: dict, cfg, now: float) -> dict:
    """A device as admins see it: no secrets; health from its last heartbeat."""
    out = {k: v for k, v in r.items() if k not in SECRETS and k != "health"}
    out["health"] = devices.health(r)
    out["online"] = bool(r["online"])
    out["stale"] = r["state"] != "retired" and (r["health_at"] or 0) < now - 3 * cfg.heartbeat_s
    out["key_rotation_grace_until"] = deps.iso(r["prev_key_until"], cfg.timezone) \
        if r["prev_key"] and r["prev_key_until"] > now else None
    for k in ("created_at", "changed_at", "status_at", "health_at", "sync_at", "prev_key_until"):
        out[k] = deps.iso(r[k], cfg.timezone)
    return out


@router.get("", summary="All devices with their health", dependencies=[deps.needs("devices:read")])
def list_devices(d=Depends(deps.db), cfg=Depends(deps.cfg), state: str | None = None, window: str | None = None):
    now = time.time()
    return [view(r, cfg, now) for r in devices.listed(d, state, window)]


@router.get("/{dev}", summary="One device with its health", responses=deps.errors(404),
            dependencies=[deps.needs("devices:read")])
def get_device(dev: DevPath, d=Depends(deps.db), cfg=Depends(deps.cfg)):
    r = devices.get(d, dev)
    if r is None:
        raise NotFound(f"no device {dev}")
    return view(r, cfg, time.time())


@router.post("", status_code=201, summary="Register a device; its key and password are shown this once",
             responses=deps.errors(400, 409, 413))
def add(body: NewDevice, reg=Depends(deps.registry), who=deps.needs("devices:write")):
    return reg.add(body.dev, body.window, body.model, who.name)


@router.post("/{dev}/window", summary="Assign or move a device to a window",
             responses=deps.errors(400, 404, 409, 413))
def move(dev: DevPath, body: Move, reg=Depends(deps.registry), cfg=Depends(deps.cfg),
         who=deps.needs("devices:write")):
    return view(reg.move(dev, body.window, who.name), cfg, time.time())


@router.post("/{dev}/retire", summary="Retire a device: it is locked out at once",
             responses=deps.errors(404, 409))
def retire(dev: DevPath, reg=Depends(deps.registry), who=deps.needs("devices:write")):
    reg.retire(dev, who.name)
    return {"dev": dev, "state": "retired"}


@router.post("/{dev}/rotate", summary="New key and password, shown this once",
             responses=deps.errors(400, 404, 409, 413))
def rotate(dev: DevPath, body: Rotate, reg=Depends(deps.registry), who=deps.needs("devices:write")):
    return reg.rotate(dev, body.grace_hours * 3600, who.name)
