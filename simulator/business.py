"""Stand-in for the hall's business (queuing) system: staff sign in at windows and
complete cases, and it tells the gateway over the gateway's HTTP API."""

from __future__ import annotations

import io
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

    def put_photo(self, staff_id: str, image: bytes) -> dict:
        r = self.http.put(f"/api/v1/staff/{staff_id}/photo", content=image, headers={"Content-Type": "image/jpeg"})
        r.raise_for_status()
        return r.json()

    def complete_case(self, window: str) -> dict:
        """Finish a case at the window with a fresh serial number and a random item."""
        code, name = self.rng.choice(ITEMS)
        serial = f"{self.day}-{window}-{next(self._serials):06d}-{self.rng.randrange(10**6):06d}"
        r = self.http.post("/api/v1/cases", json={"serial": serial, "window": window,
                                                  "item_code": code, "item_name": name})
        r.raise_for_status()
        return r.json()


def portrait(staff_id: str, size: int = 480) -> bytes:
    """A stand-in staff photo, as the business system keeps one: a JPEG of a figure on a
    background coloured by the staff ID (so that each photo is told apart on a screen)."""
    from PIL import Image, ImageDraw

    rng = random.Random(staff_id)
    bg = (rng.randrange(60, 200), rng.randrange(60, 200), rng.randrange(60, 200))
    img = Image.new("RGB", (size, size * 4 // 3), bg)  # portrait, as ID photos are: cropped square by the gateway
    d = ImageDraw.Draw(img)
    c, h = size // 2, size * 4 // 3
    d.ellipse([c - size // 5, h // 2 - size // 2, c + size // 5, h // 2 - size // 10], fill=(240, 205, 180))
    d.ellipse([c - size * 2 // 5, h // 2, c + size * 2 // 5, h // 2 + size * 3 // 4], fill=(30, 50, 90))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90)
    return out.getvalue()
