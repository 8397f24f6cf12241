"""A device's screen as a PNG: the 128x64 MONO_VLSB framebuffer the firmware draws
(firmware/device/display.py), written with zlib alone."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

W, H = 128, 64


def pixels(fb: bytes) -> list[list[int]]:
    """Rows of 0/1 pixels. MONO_VLSB: each byte is 8 vertical pixels, LSB on top."""
    if len(fb) != W * H // 8:
        raise ValueError(f"a {W}x{H} framebuffer has {W * H // 8} bytes, not {len(fb)}")
    return [[(fb[(y // 8) * W + x] >> (y % 8)) & 1 for x in range(W)] for y in range(H)]


def png(fb: bytes, scale: int = 4) -> bytes:
    """Lit pixels white on black, each scale x scale."""
    rows = []
    for row in pixels(fb):
        line = bytes(255 if p else 0 for p in row for _ in range(scale))
        rows.extend([b"\x00" + line] * scale)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    head = struct.pack(">IIBBBBB", W * scale, H * scale, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + chunk(b"IDAT", zlib.compress(b"".join(rows)))
            + chunk(b"IEND", b""))


def save(fb: bytes, path: Path | str, scale: int = 4) -> Path:
    path = Path(path)
    path.write_bytes(png(fb, scale))
    return path
