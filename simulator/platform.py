"""Stand-in for the provincial 好差评 platform: an HTTP service that keeps what it accepts.

It is idempotent by rating ID, as a real platform's push interface is expected to be:
a record sent again is answered "duplicate" and counted, never stored twice.
"""

from __future__ import annotations

import secrets
import threading
from collections import Counter

from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel

REQUIRED = ("id", "case_no", "window", "staff_id", "level", "score", "rated_at", "channel")


class Batch(BaseModel):
    records: list[dict]


def create_app(token: str) -> FastAPI:
    app = FastAPI(title="Provincial platform stand-in")
    records: dict[str, dict] = {}
    receipts: Counter = Counter()
    lock = threading.Lock()

    def auth(request: Request):
        given = request.headers.get("authorization", "")
        if not secrets.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise HTTPException(401, "bad token")

    @app.post("/api/v1/evaluations")
    def push(batch: Batch, request: Request):
        auth(request)
        results = []
        with lock:
            for rec in batch.records:
                missing = [k for k in REQUIRED if k not in rec]
                if missing:
                    results.append({"id": rec.get("id"), "status": "invalid", "error": f"missing {missing}"})
                    continue
                receipts[rec["id"]] += 1
                if rec["id"] in records:
                    results.append({"id": rec["id"], "status": "duplicate"})
                else:
                    records[rec["id"]] = rec
                    results.append({"id": rec["id"], "status": "accepted"})
        return {"results": results}

    @app.get("/api/v1/evaluations")
    def query(request: Request):
        auth(request)
        with lock:
            return {"count": len(records), "resent": sum(n - 1 for n in receipts.values()),
                    "records": list(records.values())}

    @app.get("/health")
    def health():
        return {"ok": True}

    return app


def serve(port: int, token: str) -> int:
    import uvicorn

    uvicorn.run(create_app(token), host="127.0.0.1", port=port, log_level="warning")
    return 0
