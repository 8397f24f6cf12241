"""The gateway's HTTP API (FastAPI): the hall business system's calls and the admin views.

Every endpoint but /api/v1/health and /api/v1/login needs `Authorization: Bearer <token>`,
checked before the body is read (guard.py); what the token's role may do is said on each
route (deps.needs, auth.ROLES). Bad input gets a 4xx with a message saying what is wrong,
never the input echoed back. The library's named errors (errors.py) are mapped to
their status codes here and nowhere else; anything else is a bug, logged, and a 500.
"""

from __future__ import annotations

import logging
import queue
import sqlite3

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from .. import console
from ..auth import Authenticator
from ..config import Config
from ..errors import Conflict, NotFound
from ..events import Events
from ..workflow import WorkOrders
from . import accounts, devices, firmware, hall, metrics, ops, ratings, workorders
from .deps import errors
from .guard import Guard

log = logging.getLogger("pingjia.api")


def create_app(cfg: Config, gateway=None, local_token: str | None = None) -> FastAPI:
    """gateway: the running service (ingest, forwarder, work orders, events); None serves
    the stored data only. local_token: the token of this box's `pingjia gateway` commands."""
    app = FastAPI(title="Pingjia gateway", version="1",
                  description=f"Hall {cfg.hall}: devices, sessions and cases, ratings, statistics, "
                              f"work orders, accounts.")
    app.state.cfg = cfg
    app.state.gateway = gateway
    app.state.auth = Authenticator(cfg, local_token)
    app.state.db_pool = queue.SimpleQueue()  # deps.db
    # without a running gateway, deadlines are still computed; alerts go nowhere
    app.state.work_orders = gateway.work_orders if gateway is not None else WorkOrders(cfg, Events(cfg))

    @app.exception_handler(NotFound)
    async def not_found(request, exc):
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(Conflict)
    async def conflict(request, exc):
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc):
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Allow names every method of the path, not one route's
            headers["Allow"] = ", ".join(sorted({m for r in app.routes if isinstance(r, APIRoute)
                                                 and r.matches(request.scope)[0] != Match.NONE
                                                 for m in r.methods or ()}))
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(sqlite3.OperationalError)
    async def storage(request, exc):
        # a write refused by the disk (full, failing): say so, not a bare 500; the gateway's
        # storage alarm says the rest (alarms.py)
        log.error("%s %s: the database failed: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": f"the gateway cannot use its database now ({exc}); "
                                       f"try again once its disk has room"}, status_code=503)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc):
        # where and why, never the input itself: an answer must not echo what was sent
        return JSONResponse({"detail": [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
                                        for e in exc.errors()[:20]]}, status_code=422)

    app.include_router(ops.public)
    app.include_router(accounts.public)
    app.include_router(hall.business, responses=errors(401, 403))
    for module in (hall, devices, firmware, ratings, workorders, ops, accounts, metrics):
        app.include_router(module.router, responses=errors(401, 403))
    console.mount(app)
    app.add_middleware(Guard, auth=app.state.auth)
    return app
