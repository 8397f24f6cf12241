"""The API's front door, before FastAPI reads a byte of the body: only a live bearer
token gets in (auth.py says whose; what it may do is each route's business, deps.py), and
a body may not be larger than MAX_BODY.

FastAPI reads and parses a request's body before it runs the route's dependencies, so a
token check written as a dependency lets anybody make the gateway read a 100 MB body.
This is plain ASGI because it must act before the framework does. The principal it found
is left in the scope for the routes.
"""

from __future__ import annotations

import json

from fastapi import HTTPException

from ..auth import Authenticator

MAX_BODY = 1_000_000  # bytes; the largest legitimate body (a requeue of 10,000 IDs) is ~300 KB
LARGER = {"/api/v1/firmware": 4_000_000}  # a zipped firmware build
PUBLIC = ("/api/v1/health", "/api/v1/login", "/docs", "/openapi.json", "/console")
PUBLIC_UNDER = "/console/"  # the console's files: no data in them (gateway/console)
EVENTS = "/api/v1/events"  # a browser's EventSource sends no header: it brings a ticket instead
PRINCIPAL = "pingjia.principal"  # the scope key


class Guard:
    def __init__(self, app, auth: Authenticator):
        self.app = app
        self.auth = auth

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        path = scope["path"]
        if path not in PUBLIC and not path.startswith(PUBLIC_UNDER):
            client, server = scope.get("client"), scope.get("server")
            header = headers.get(b"authorization", b"")
            if not header and path == EVENTS:
                header = self.auth.redeem(_ticket(scope.get("query_string", b""))) or b""
                # the stream checks its token again as it goes: it finds it where it would be
                scope["headers"] = [*scope["headers"], (b"authorization", header)]
            principal = self.auth.resolve(header, client[0] if client else None, server[0] if server else None)
            if principal is None:
                return await _answer(send, 401, "missing, wrong, expired or revoked bearer token",
                                     [(b"www-authenticate", b"Bearer")])
            scope[PRINCIPAL] = principal
        try:
            length = int(headers.get(b"content-length", b"0"))
        except ValueError:
            return await _answer(send, 400, "bad Content-Length")
        limit = LARGER.get(path, MAX_BODY)
        if length > limit:
            return await _answer(send, 413, f"the body is larger than {limit} bytes")
        seen = 0

        async def capped():
            # a body sent without a length (chunked) is counted as it comes
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        started = False

        async def tracked(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, capped, tracked)
        except BodyTooLarge:
            if not started:
                await _answer(send, 413, f"the body is larger than {limit} bytes")


def _ticket(query: bytes) -> str:
    for part in query.split(b"&"):
        if part.startswith(b"ticket="):
            return part[7:].decode("latin-1")
    return ""


class BodyTooLarge(HTTPException):
    """An HTTPException, so that FastAPI, reading the body, answers it as such."""

    def __init__(self, limit: int):
        super().__init__(413, f"the body is larger than {limit} bytes")


async def _answer(send, status: int, detail: str, headers=()) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})
