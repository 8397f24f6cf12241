"""Stand-in for the provincial 好差评 platform (`pingjia platform-sim`).

It reads the same province profile as the gateway: it validates every record against the
profile's checks, verifies the request signature, enforces a rate limit in records per
second (429 with Retry-After), and is idempotent by the profile's record ID — a record
sent again is answered "duplicate" and counted, never stored twice. Faults are injected
on demand through POST /sim/faults or the command line:

    error_rate     share of requests answered 503
    latency_ms     added to every answer
    timeout_rate   share of requests that hang past any sane client timeout
    lost_reply_rate share of requests stored, then answered 500 (the reply "lost")
    dup_reply_rate  share of re-sent records answered "accepted" instead of "duplicate"
    drop_rate      share of requests stored, then the connection dropped mid-reply
    outage_s       answer 503 to everything for this many seconds from now
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from gateway.province import Profile, TokenBucket, signer

TIMEOUT_HANG_S = 120


class DroppedReply(Response):
    """Starts a reply, then drops the connection: the client never learns the outcome."""

    async def __call__(self, scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4096")]})
        await send({"type": "http.response.body", "body": b'{"code":0,"res', "more_body": True})
        raise ConnectionAbortedError("connection dropped (injected)")


class Faults(BaseModel):
    error_rate: float = Field(0, ge=0, le=1)
    latency_ms: float = Field(0, ge=0, le=60000)
    timeout_rate: float = Field(0, ge=0, le=1)
    lost_reply_rate: float = Field(0, ge=0, le=1)
    dup_reply_rate: float = Field(0, ge=0, le=1)
    drop_rate: float = Field(0, ge=0, le=1)
    outage_s: float = Field(0, ge=0, le=86400)


@dataclass
class _State:
    faults: Faults
    outage_until: float = 0.0  # monotonic time the outage ends


def create_app(profile: Profile, app_key: str, app_secret: str, rate: float | None = None,
               faults: Faults | None = None, seed: int | None = None) -> FastAPI:
    app = FastAPI(title=f"Provincial platform stand-in ({profile.name})")
    auth = signer(profile, app_key, app_secret)
    rate = rate or profile.rate_limit
    bucket = TokenBucket(rate, max(rate, profile.batch_size))
    state = _State(faults or Faults())
    if state.faults.outage_s:
        state.outage_until = time.monotonic() + state.faults.outage_s
    records: dict[str, dict] = {}
    stats: Counter = Counter()
    lock = threading.Lock()
    rng = random.Random(seed)

    def error(status: int, message: str, **headers) -> JSONResponse:
        stats[f"http_{status}"] += 1
        return JSONResponse({"code": status, "message": message}, status_code=status,
                            headers={k.replace("_", "-"): v for k, v in headers.items()})

    feedback: dict[str, dict] = {}

    async def receive(request: Request, section: Profile, store: dict, about: dict | None):
        """One push of records to `section`'s path, kept in `store` by its ID; with
        `about`, a record's ID must name one kept there (feedback on a known rating)."""
        f: Faults = state.faults
        body = await request.body()
        stats["requests"] += 1
        if f.latency_ms:
            await asyncio.sleep(f.latency_ms / 1000)
        if time.monotonic() < state.outage_until:
            return error(503, "platform under maintenance")
        if not auth.check("POST", section.path, body, request.headers):
            return error(401, "bad signature or app key")
        if rng.random() < f.timeout_rate:
            stats["timeouts_injected"] += 1
            await asyncio.sleep(TIMEOUT_HANG_S)
        if rng.random() < f.error_rate:
            return error(503, "transient error (injected)")
        try:
            batch = json.loads(body)["records"]
            assert isinstance(batch, list) and all(isinstance(r, dict) for r in batch)
        except (ValueError, KeyError, TypeError, AssertionError):
            return error(400, "body must be {\"records\": [objects]}")
        if len(batch) > section.batch_size:
            return error(413, f"at most {section.batch_size} records a request")
        wait = bucket.take(len(batch))
        if wait:
            return error(429, "rate limit", retry_after=str(max(1, round(wait + 0.5))))
        results = []
        with lock:
            for rec in batch:
                rid = rec.get(section.id_field)
                problems = section.problems(rec)
                if about is not None and rid not in about:
                    problems.append(f"no evaluation {rid}")
                if problems:
                    stats["invalid"] += 1
                    results.append({"id": rid, "status": "invalid", "error": "; ".join(problems)})
                elif rid in store:
                    stats["duplicates_received"] += 1
                    dup_ok = rng.random() < f.dup_reply_rate
                    results.append({"id": rid, "status": "accepted" if dup_ok else "duplicate"})
                else:
                    store[rid] = rec
                    stats["accepted" if about is None else "feedback_accepted"] += 1
                    results.append({"id": rid, "status": "accepted"})
        if rng.random() < f.lost_reply_rate:
            stats["lost_replies_injected"] += 1
            return error(500, "reply lost (injected) after storing")
        if rng.random() < f.drop_rate:
            stats["drops_injected"] += 1
            return DroppedReply()
        return {"code": 0, "results": results}

    @app.post(profile.path)
    async def push(request: Request):
        return await receive(request, profile, records, None)

    if (fb := profile.feedback) is not None:
        @app.post(fb.path)
        async def push_feedback(request: Request):
            return await receive(request, fb, feedback, records)

        @app.get("/sim/feedback")
        def query_feedback():
            with lock:
                return {"count": len(feedback), "records": list(feedback.values())}

    @app.get("/sim/records")
    def query():
        with lock:
            return {"count": len(records), "records": list(records.values())}

    @app.get("/sim/stats")
    def get_stats():
        return {**stats, "stored": len(records), "rate_limit_per_s": rate,
                "faults": state.faults.model_dump(),
                "outage_left_s": max(0.0, round(state.outage_until - time.monotonic(), 1))}

    @app.post("/sim/faults")
    def set_faults(body: Faults):
        state.faults = body
        state.outage_until = time.monotonic() + body.outage_s if body.outage_s else 0.0
        return get_stats()

    @app.get("/health")
    def health():
        return {"ok": True, "profile": profile.name}

    return app


SECRET_ENV = "PINGJIA_PLATFORM_SECRET"


def serve(args) -> int:
    import uvicorn

    faults = Faults(error_rate=args.error_rate, latency_ms=args.latency_ms, timeout_rate=args.timeout_rate,
                    lost_reply_rate=args.lost_reply_rate, dup_reply_rate=args.dup_reply_rate, drop_rate=args.drop_rate,
                    outage_s=args.outage_s)
    if args.app_secret_file:
        secret = Path(args.app_secret_file).read_text().strip()
    elif os.environ.get(SECRET_ENV):
        secret = os.environ[SECRET_ENV]
    else:
        raise SystemExit(f"give the gateway's platform secret in a file (--app-secret-file) or in {SECRET_ENV}")
    app = create_app(Profile.load(args.profile), args.app_key, secret, args.rate, faults, args.seed)
    # a hanging request (a fault it injects) must not hold its shutdown for long
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", timeout_graceful_shutdown=1)
    return 0
