"""Staff photos for the tablet's case screen: each kept as the tablet draws it, SIZE x SIZE
RGB565 (big-endian, the panel's order: firmware/device/canvas.py), named by its SHA-256.

A photo comes as a JPEG or PNG from the business system or an admin, and is decoded,
cropped to a square and scaled here, once, so that a device receives pixels it can blit
and nothing it must parse. Pillow refuses images beyond its decompression-bomb limit; a
file that is not an image is refused with the reason. A session to a tablet names the
photo's hash (signed), and the tablet fetches the pixels chunk by chunk (protocol.md
section 13), checked against it.
"""

from __future__ import annotations

import hashlib
import io
import warnings

from ..errors import NotFound, PingjiaError
from . import one, transaction

SIZE = 96  # pixels a side on the tablet's case screen
BYTES = SIZE * SIZE * 2
MAX_UPLOAD = 1_000_000  # bytes of JPEG or PNG: the API's largest body (api/guard.py)
MAX_PIXELS = 40_000_000  # decoded: a 6000x6000 camera photo passes, a decompression bomb does not
CHUNK = 2048  # pixels' bytes a chunk carries (its base64 fits the device's 4 KB packets)


class BadPhoto(PingjiaError):
    """An upload that is not a usable picture."""


def create(db) -> None:
    """The table (schema migration 10)."""
    db.execute("""create table staff_photos (staff_id text primary key, hash text not null unique,
                  pixels blob not null, updated_at real not null, updated_by text not null)""")


def pixels(data: bytes) -> bytes:
    """A JPEG or PNG as SIZE x SIZE RGB565, big-endian: the middle square, scaled."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if len(data) > MAX_UPLOAD:
        raise BadPhoto(f"a photo is at most {MAX_UPLOAD} bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = MAX_PIXELS
            opened = Image.open(io.BytesIO(data))
            if opened.format not in ("JPEG", "PNG"):
                raise BadPhoto(f"a photo is a JPEG or PNG, not {opened.format}")
            img = ImageOps.fit(ImageOps.exif_transpose(opened).convert("RGB"), (SIZE, SIZE))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as e:
        raise BadPhoto(f"not a usable JPEG or PNG: {e}") from None
    out = bytearray(BYTES)
    for i, (r, g, b) in enumerate(img.getdata()):
        c = (r & 0xF8) << 8 | (g & 0xFC) << 3 | b >> 3
        out[2 * i], out[2 * i + 1] = c >> 8, c & 0xFF
    return bytes(out)


def put(db, staff_id: str, data: bytes, actor: str, now: float) -> dict:
    px = pixels(data)
    h = hashlib.sha256(px).hexdigest()
    with transaction(db):
        db.execute("delete from staff_photos where staff_id = ? or hash = ?", [staff_id, h])
        db.execute("insert into staff_photos (staff_id, hash, pixels, updated_at, updated_by) values (?, ?, ?, ?, ?)",
                   [staff_id, h, px, now, actor])
    return {"staff_id": staff_id, "hash": h, "size": SIZE}


def remove(db, staff_id: str) -> None:
    with transaction(db):
        if not db.execute("delete from staff_photos where staff_id = ?", [staff_id]).rowcount:
            raise NotFound(f"no photo of staff {staff_id}")


def hash_of(db, staff_id: str | None) -> str | None:
    r = staff_id and one(db, "select hash from staff_photos where staff_id = ?", [staff_id])
    return r["hash"] if r else None


def get(db, staff_id: str) -> dict | None:
    return one(db, "select * from staff_photos where staff_id = ?", [staff_id])


def png(px: bytes) -> bytes:
    """The stored pixels as a PNG, as the tablet shows them (for the console)."""
    from PIL import Image

    rgb = bytearray()
    for i in range(0, len(px), 2):
        c = px[i] << 8 | px[i + 1]
        rgb += bytes(((c >> 11) * 255 // 31, (c >> 5 & 63) * 255 // 63, (c & 31) * 255 // 31))
    out = io.BytesIO()
    Image.frombytes("RGB", (SIZE, SIZE), bytes(rgb)).save(out, "PNG")
    return out.getvalue()
