"""A reader of the gateway's event stream (GET /api/v1/events, server-sent events), as a
console would open it: each event kept with the time it arrived."""

from __future__ import annotations

import json
import threading
import time

import httpx


class EventStream:
    def __init__(self, api_url: str, token: str, last_event_id: int | None = None):
        self.events: list[dict] = []  # each with "_arrived" (time.time())
        self.status: int | None = None
        self.refusal = ""  # what the gateway said when it did not open the stream
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.ended = threading.Event()  # the gateway ended the stream, or it was closed
        headers = {"Authorization": f"Bearer {token}"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        self._http: httpx.Client
        self._thread = threading.Thread(target=self._read, args=(api_url, headers), daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise TimeoutError("the event stream did not open")

    def _read(self, url: str, headers: dict) -> None:
        self._http = httpx.Client(base_url=url, timeout=httpx.Timeout(10, read=60))
        try:
            with self._http.stream("GET", "/api/v1/events", headers=headers) as r:
                self.status = r.status_code
                if r.status_code != 200:
                    self.refusal = r.read().decode("utf-8", "replace")[:500]
                self._ready.set()
                data = None
                for line in r.iter_lines():
                    if self._stop.is_set():
                        return
                    if line.startswith("data: "):
                        data = json.loads(line[6:])
                    elif line == "" and data is not None:
                        self.events.append({**data, "_arrived": time.time()})
                        data = None
        except (httpx.HTTPError, RuntimeError, OSError):  # closed, or the gateway went away
            pass
        finally:
            self._ready.set()
            self.ended.set()

    def of(self, kind: str) -> list[dict]:
        return [e for e in self.events if e["type"] == kind]

    def close(self) -> None:
        self._stop.set()
        self._http.close()  # ends the reader's wait for the next line
        self._thread.join(5)
