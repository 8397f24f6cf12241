"""The evaluators' bitmap fonts: the five-button's from GNU Unifont (Debian package
`unifont`), the tablet's larger one rasterised from WenQuanYi Micro Hei
(`fonts-wqy-microhei`).

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

The tablet reads its text at arm's length, so its font is larger and anti-aliased: SIZE px
high, two bits a pixel (four shades), read by firmware/device/canvas.py:
    b"PJF2", u8 size, u8 bits per pixel (2), u16 H, u16 F
    H x u16 code points, sorted      F x u16 code points, sorted
    H glyphs size/2 wide, F glyphs size wide: framebuf's GS2_HMSB, rows of
    ceil(width / 4) bytes, pixel x in bits 2*(x % 4) and up
Unifont has no large sizes, and a 16 px glyph scaled up is blocky, so these glyphs come
from a TrueType font through Pillow (FreeType).
"""

from __future__ import annotations

import functools
import struct
from pathlib import Path

from gateway.errors import PingjiaError

UNIFONT_HEX = Path("/usr/share/unifont/unifont.hex")
MAGIC = b"PJF1"
MICROHEI = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
LARGE_MAGIC = b"PJF2"
SIZE = 28  # the tablet's text: five-character level names fit a 94 px tile


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


def _gs2(img, width: int) -> bytes:
    """An 8-bit greyscale glyph image as GS2_HMSB rows (four shades)."""
    stride = (width + 3) // 4
    px = img.load()
    out = bytearray(stride * img.height)
    for y in range(img.height):
        for x in range(width):
            out[y * stride + x // 4] |= (px[x, y] * 3 + 127) // 255 << 2 * (x % 4)
    return bytes(out)


@functools.cache
def build_large(name: str = "gb2312", source: Path = MICROHEI, size: int = SIZE) -> bytes:
    """The tablet's font (PJF2): every character of the set the TrueType font has."""
    if not source.exists():
        raise PingjiaError(f"{source} is missing: install Debian's `fonts-wqy-microhei` package "
                           "(bash .ci/setup does)")
    from PIL import Image, ImageDraw, ImageFont  # the technician's tools only: not the gateway's

    face = ImageFont.truetype(str(source), size)
    ascent, descent = face.getmetrics()
    top = (size - ascent - descent) // 2
    half: dict[int, bytes] = {}
    full: dict[int, bytes] = {}
    for cp in sorted(charset(name)):
        ch = chr(cp)
        if cp != 0x20 and not face.getmask(ch).getbbox():
            continue  # the font lacks it: the device draws its box
        width = size // 2 if cp < 0x80 else size
        wide = int(face.getlength(ch) + 0.99)
        img = Image.new("L", (max(width, wide), size), 0)
        ImageDraw.Draw(img).text(((img.width - face.getlength(ch)) / 2, top), ch, font=face, fill=255)
        if img.width > width:  # a wide letter (W, M) in its half cell: narrowed, not shrunk
            img = img.resize((width, size), Image.Resampling.LANCZOS)
        (half if cp < 0x80 else full)[cp] = _gs2(img, width)
    h, f = sorted(half), sorted(full)
    return b"".join([LARGE_MAGIC, struct.pack("<BBHH", size, 2, len(h), len(f)),
                     struct.pack(f"<{len(h)}H", *h), struct.pack(f"<{len(f)}H", *f),
                     *(half[c] for c in h), *(full[c] for c in f)])


FILES = {"five-button": "font.bin", "tablet": "font_large.bin"}  # a model's font, in its slot


def for_model(model: str, name: str = "gb2312") -> bytes:
    return build_large(name) if model == "tablet" else build(name)


def write(path: Path, name: str = "gb2312", model: str = "five-button") -> Path:
    """Build the model's font into path unless an identical build is already there."""
    path = Path(path)
    data = for_model(model, name)
    if not path.exists() or path.read_bytes() != data:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path
