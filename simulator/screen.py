"""A device's screen as a PNG: the five-button's 128x64 MONO_VLSB framebuffer
(firmware/device/display.py) or the tablet's 480x320 RGB565, big-endian as its panel
takes it (firmware/device/canvas.py), written with zlib alone."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

W, H = 128, 64
TABLET_W, TABLET_H = 480, 320


def pixels(fb: bytes) -> list[list[int]]:
    """Rows of 0/1 pixels. MONO_VLSB: each byte is 8 vertical pixels, LSB on top."""
    if len(fb) != W * H // 8:
        raise ValueError(f"a {W}x{H} framebuffer has {W * H // 8} bytes, not {len(fb)}")
    return [[(fb[(y // 8) * W + x] >> (y % 8)) & 1 for x in range(W)] for y in range(H)]


def rgb(fb: bytes) -> list[list[tuple[int, int, int]]]:
    """Rows of (r, g, b) pixels of the tablet's framebuffer."""
    if len(fb) != TABLET_W * TABLET_H * 2:
        raise ValueError(f"a {TABLET_W}x{TABLET_H} RGB565 framebuffer has {TABLET_W * TABLET_H * 2} bytes, "
                         f"not {len(fb)}")
    out = []
    for y in range(TABLET_H):
        row = []
        for x in range(TABLET_W):
            c = fb[2 * (y * TABLET_W + x)] << 8 | fb[2 * (y * TABLET_W + x) + 1]
            row.append(((c >> 11) * 255 // 31, (c >> 5 & 63) * 255 // 63, (c & 31) * 255 // 31))
        out.append(row)
    return out


def _png(width: int, height: int, colour: int, rows: list[bytes]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    head = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head)
            + chunk(b"IDAT", zlib.compress(b"".join(b"\x00" + r for r in rows))) + chunk(b"IEND", b""))


def png(fb: bytes, scale: int | None = None) -> bytes:
    """The five-button's lit pixels white on black, each scale x scale (4); the tablet's
    in colour, at its own size (scale 1)."""
    if len(fb) == TABLET_W * TABLET_H * 2:
        s = scale or 1
        rows = [bytes(v for p in row for _ in range(s) for v in p) for row in rgb(fb)]
        return _png(TABLET_W * s, TABLET_H * s, 2, [r for r in rows for _ in range(s)])
    s = scale or 4
    rows = [bytes(255 if p else 0 for p in row for _ in range(s)) for row in pixels(fb)]
    return _png(W * s, H * s, 0, [r for r in rows for _ in range(s)])  # 8-bit greyscale


def save(fb: bytes, path: Path | str, scale: int | None = None) -> Path:
    path = Path(path)
    path.write_bytes(png(fb, scale))
    return path
