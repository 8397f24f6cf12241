"""The gateway's HTTP API (FastAPI): the hall business system's calls and the admin views.

Every endpoint but /api/v1/health needs `Authorization: Bearer <api_token>`.
"""

from __future__ import annotations

import secrets
import time
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from . import store
from .config import Config

NAME = r"^[A-Za-z0-9_-]{1,32}$"
Window = Annotated[str, Field(pattern=NAME)]


class SignIn(BaseModel):
    staff_id: str = Field(pattern=NAME, description="工号, the staff ID")
    staff_name: str = Field(min_length=1, max_length=32)


class Case(BaseModel):
    serial: str = Field(pattern=r"^[A-Za-z0-9._-]{1,50}$", description="办件流水号, the case serial number")
    window: Window
    item_code: str = Field(min_length=1, max_length=64)
    item_name: str = Field(min_length=1, max_length=100)


def create_app(cfg: Config, gateway=None) -> FastAPI:
    """gateway: the running service (ingest, forwarder); None serves the stored data only."""
    app = FastAPI(title="Pingjia gateway", version="1", description=f"Hall {cfg.hall}")

    def db():
        d = store.open_db(cfg.db_path)
        try:
            yield d
        finally:
            d.conn.close()

    def auth(request: Request):
        given = request.headers.get("authorization", "")
        if not secrets.compare_digest(given.encode(), f"Bearer {cfg.api_token}".encode()):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(ValueError)
    async def value_error(request, exc):
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.get("/api/v1/health")
    def health():
        up = gateway is not None and gateway.ingest.connected.is_set()
        return {"ok": True, "hall": cfg.hall, "broker_connected": up}

    def push(window):
        if gateway is not None:
            gateway.ingest.publish_session(window)

    @app.post("/api/v1/windows/{window}/sign-in", dependencies=[Depends(auth)])
    def sign_in(window: Window, body: SignIn, d=Depends(db)):
        s = store.sign_in(d, window, body.staff_id, body.staff_name, time.time())
        push(window)
        return s

    @app.post("/api/v1/windows/{window}/sign-out", dependencies=[Depends(auth)])
    def sign_out(window: Window, d=Depends(db)):
        store.sign_out(d, window, time.time())
        push(window)
        return {"window": window, "signed_in": False}

    @app.post("/api/v1/cases", dependencies=[Depends(auth)], status_code=201)
    def case_completed(body: Case, d=Depends(db)):
        row = store.complete_case(d, body.serial, body.window, body.item_code, body.item_name, time.time())
        push(body.window)
        return row

    @app.get("/api/v1/ratings", dependencies=[Depends(auth)])
    def ratings(d=Depends(db), window: str | None = None, staff_id: str | None = None,
                limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0)):
        where, args = [], []
        for col, val in (("window", window), ("staff_id", staff_id)):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        rows = d["ratings"].rows_where(" and ".join(where) or None, args, order_by="received_at",
                                       limit=limit, offset=offset)
        return list(rows)  # the device's signature stays with the rating: it is the evidence

    @app.get("/api/v1/devices", dependencies=[Depends(auth)])
    def devices(d=Depends(db)):
        out = []
        for r in d["devices"].rows:
            r = {k: v for k, v in r.items() if k not in ("key", "pw_hash")}  # secrets never leave
            r["health"] = store.health_json(r)
            out.append(r)
        return out

    @app.get("/api/v1/rejections", dependencies=[Depends(auth)])
    def rejections(d=Depends(db), limit: int = Query(100, ge=1, le=1000)):
        return {"counts": store.rejection_counts(d),
                "recent": list(d["rejections"].rows_where(order_by="id desc", limit=limit))}

    @app.get("/api/v1/stats", dependencies=[Depends(auth)])
    def stats(d=Depends(db)):
        out = {"ratings": d["ratings"].count, "forward": store.forward_counts(d),
               "rejections": store.rejection_counts(d)}
        if gateway is not None:
            out["ingest_since_start"] = dict(gateway.ingest.counts)
            out["forwarder_last_error"] = gateway.forwarder.last_error
        return out

    return app
