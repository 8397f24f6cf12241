"""The gateway's HTTP API (FastAPI): the hall business system's calls and the admin views.

Every endpoint but /api/v1/health needs `Authorization: Bearer <api_token>`. Bad input
gets a 4xx with a message saying what is wrong; never a 500.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse

from ..config import Config
from . import devices, hall, ops, ratings
from .deps import auth


def create_app(cfg: Config, gateway=None) -> FastAPI:
    """gateway: the running service (ingest, forwarder); None serves the stored data only."""
    app = FastAPI(title="Pingjia gateway", version="1",
                  description=f"Hall {cfg.hall}: devices, sessions and cases, ratings, statistics.")
    app.state.cfg = cfg
    app.state.gateway = gateway

    @app.exception_handler(LookupError)
    async def not_found(request, exc):
        return JSONResponse({"detail": str(exc).strip("'\"")}, status_code=404)

    @app.exception_handler(ValueError)
    async def conflict(request, exc):
        return JSONResponse({"detail": str(exc)}, status_code=409)

    app.include_router(ops.public)
    for module in (hall, devices, ratings, ops):
        app.include_router(module.router, dependencies=[Depends(auth)])
    return app
