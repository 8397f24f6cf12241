"""Stand-in for the hall's business (queuing) system: staff sign in at windows and
complete cases, and it tells the gateway over the gateway's HTTP API."""

from __future__ import annotations

import itertools
import random
import time

import httpx

STAFF = [("S1001", "张伟"), ("S1002", "王芳"), ("S1003", "李娜"), ("S1004", "刘洋"),
         ("S1005", "陈静"), ("S1006", "杨磊"), ("S1007", "赵敏"), ("S1008", "黄强")]
ITEMS = [("11440300MB2C92138X4440117001000", "居民身份证换领"),
         ("11440300MB2C92138X4440117002000", "营业执照变更登记"),
         ("11440300MB2C92138X4440117003000", "社会保险参保登记"),
         ("11440300MB2C92138X4440117004000", "不动产登记资料查询"),
         ("11440300MB2C92138X4440117005000", "出生医学证明补发")]


class Business:
    def __init__(self, api_url: str, token: str, seed: int | None = None):
        self.http = httpx.Client(base_url=api_url, timeout=10.0, headers={"Authorization": f"Bearer {token}"})
        self.rng = random.Random(seed)
        self._serials = itertools.count(1)
        self.day = time.strftime("%Y%m%d")

    def sign_in(self, window: str, staff_id: str, staff_name: str) -> dict:
        r = self.http.post(f"/api/v1/windows/{window}/sign-in", json={"staff_id": staff_id, "staff_name": staff_name})
        r.raise_for_status()
        return r.json()

    def sign_out(self, window: str) -> None:
        self.http.post(f"/api/v1/windows/{window}/sign-out").raise_for_status()

    def complete_case(self, window: str) -> dict:
        """Finish a case at the window with a fresh serial number and a random item."""
        code, name = self.rng.choice(ITEMS)
        serial = f"{self.day}-{window}-{next(self._serials):06d}-{self.rng.randrange(10**6):06d}"
        r = self.http.post("/api/v1/cases", json={"serial": serial, "window": window,
                                                  "item_code": code, "item_name": name})
        r.raise_for_status()
        return r.json()
