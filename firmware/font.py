"""The evaluator's bitmap font, built from GNU Unifont (Debian package `unifont`).

The OLED shows item and staff names in Chinese, so the device needs CJK glyphs; a 16 px
bitmap font read from flash a glyph at a time costs no RAM beyond one glyph. The build
takes printable ASCII plus the GB 2312 character set (6,763 hanzi and its symbols, what
names and items are written in); `--charset gbk` takes all 21,886 GBK characters for
rare name characters, at about three times the flash.

File layout (all integers little-endian), read by firmware/device/display.py:
    b"PJF1", u16 half-width count H, u16 full-width count F
    H x u16 code points, sorted      F x u16 code points, sorted
    H x 16 bytes: 8x16 glyphs, one byte per row, MSB leftmost
    F x 32 bytes: 16x16 glyphs, two bytes per row
"""

from __future__ import annotations

import functools
import struct
from pathlib import Path

from gateway.errors import PingjiaError

UNIFONT_HEX = Path("/usr/share/unifont/unifont.hex")
MAGIC = b"PJF1"


def charset(name: str = "gb2312") -> set[int]:
    """Code points of printable ASCII and every character of a Chinese national set."""
    points = set(range(0x20, 0x7F))
    for hi in range(0x81 if name == "gbk" else 0xA1, 0xFF):
        for lo in range(0x40 if name == "gbk" else 0xA1, 0xFF):
            try:
                ch = bytes([hi, lo]).decode(name)
            except UnicodeDecodeError:
                continue
            if len(ch) == 1 and ord(ch) <= 0xFFFF:
                points.add(ord(ch))
    return points


@functools.cache  # the simulator writes it into every virtual device's flash
def build(name: str = "gb2312", source: Path = UNIFONT_HEX) -> bytes:
    if not source.exists():
        raise PingjiaError(f"{source} is missing: install Debian's `unifont` package (bash .ci/setup does)")
    wanted = charset(name)
    half: dict[int, bytes] = {}
    full: dict[int, bytes] = {}
    for line in source.read_text().splitlines():
        hexcp, _, bits = line.partition(":")
        cp = int(hexcp, 16)
        if cp in wanted:
            (half if len(bits) == 32 else full)[cp] = bytes.fromhex(bits)
    h, f = sorted(half), sorted(full)
    return b"".join([MAGIC, struct.pack("<HH", len(h), len(f)),
                     struct.pack(f"<{len(h)}H", *h), struct.pack(f"<{len(f)}H", *f),
                     *(half[c] for c in h), *(full[c] for c in f)])


def write(path: Path, name: str = "gb2312") -> Path:
    """Build the font into path unless an identical build is already there."""
    path = Path(path)
    data = build(name)
    if not path.exists() or path.read_bytes() != data:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path
