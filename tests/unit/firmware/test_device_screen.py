"""The evaluator's screen: the real display code under MicroPython, with the font built
from Debian's Unifont, and the host-side PNG of its framebuffer."""

import base64
import zlib

import pytest

from firmware import font
from simulator import screen
from tests.conftest import run_device_code

DRAW = """
import json, binascii
from display import Display
d = Display()
d.show(%r)
print(json.dumps(binascii.b2a_base64(d.buf, newline=False).decode()))
print(json.dumps(d.wide))
"""


def _draw(tmp_path, lines):
    out = run_device_code(DRAW % (lines,), tmp_path)
    return base64.b64decode(out[0]), out[1]


def _unifont_glyph(ch):
    for line in font.UNIFONT_HEX.read_text().splitlines():
        if line.startswith(f"{ord(ch):04X}:"):
            return bytes.fromhex(line[5:])


def test_chinese_names_render_from_the_flash_font_pixel_for_pixel(tmp_path):
    font.write(tmp_path / "font.bin")
    fb, wide = _draw(tmp_path, ("张", "", "", ""))
    px = screen.pixels(fb)
    glyph = _unifont_glyph("张")  # 16 rows x 2 bytes, MSB leftmost
    want = [[(glyph[2 * y + x // 8] >> (7 - x % 8)) & 1 for x in range(16)] for y in range(16)]
    assert [row[:16] for row in px[:16]] == want
    assert sum(map(sum, want)) > 20 and not wide


def test_a_character_missing_from_the_font_is_a_box_and_long_lines_scroll(tmp_path):
    font.write(tmp_path / "font.bin")
    fb, wide = _draw(tmp_path, ("\U0002000b", "办件 W01-20261123-000123", "", ""))
    px = screen.pixels(fb)
    assert px[2][1] == 1 and px[2][14] == 1 and px[8][8] == 0  # a hollow box
    assert wide  # the serial is wider than 128 px, so the line scrolls


def test_the_font_costs_what_the_readme_says():
    data = font.build()
    assert data[:4] == b"PJF1" and 240_000 < len(data) < 260_000
    assert len(font.charset()) == 95 + 7445  # ASCII + GB 2312 (6,763 hanzi, 682 symbols)


def test_the_framebuffer_becomes_a_png(tmp_path):
    font.write(tmp_path / "font.bin")
    fb, _ = _draw(tmp_path, ("非常满意", "", "", ""))
    data = screen.png(fb, scale=2)
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (w, h) == (256, 128)
    idat = data.index(b"IDAT")
    raw = zlib.decompress(data[idat + 4:idat + 4 + int.from_bytes(data[idat - 4:idat], "big")])
    assert len(raw) == 128 * (1 + 256) and raw.count(b"\xff") > 0
    with pytest.raises(ValueError):
        screen.png(b"short")


BUTTONS = """
import json
from buttons import Buttons
b = Buttons(30, 800)
got = [b.accept(1, 1000), b.accept(4, 1500), b.accept(2, 1800), b.accept(3, 1801)]
print(json.dumps([got, b.ignored, [n for n, _ in b._queue]]))
"""


def test_the_minimum_gap_makes_one_press_one_rating(tmp_path):
    got, ignored, queue = run_device_code(BUTTONS, tmp_path)[0]
    assert got == [True, False, True, False] and ignored == 2 and queue == [1, 2]


SUPERVISOR = """
import asyncio, json, time
from supervisor import Supervisor
class Board:
    feeds = 0
    def wdt_start(self, ms): self.ms = ms
    def wdt_feed(self): self.feeds += 1
import supervisor
supervisor.CHECK_MS = 20
b = Board()
s = Supervisor(b, 500)
s.watch("ui", 100)
s.watch("link", 100)
async def worker(name, stop_after):
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < stop_after:
        s.alive(name)
        await asyncio.sleep_ms(10)
    await asyncio.sleep_ms(100000)  # stuck on an await
async def main():
    asyncio.create_task(s.run())
    asyncio.create_task(worker("ui", 10000))
    asyncio.create_task(worker("link", 300))
    await asyncio.sleep_ms(300)
    fed = b.feeds
    await asyncio.sleep_ms(400)
    print(json.dumps([fed, b.feeds, s.late, b.ms]))
asyncio.run(main())
"""


def test_the_supervisor_stops_feeding_the_watchdog_when_a_task_is_stuck(tmp_path):
    fed, later, late, ms = run_device_code(SUPERVISOR, tmp_path)[0]
    assert fed >= 5 and ms == 500
    assert later - fed <= 6 and late == "link"  # fed until the link's deadline ran out, then never


def test_the_simulators_watchdog_resets_a_device_whose_loop_never_yields(tmp_path):
    """The ESP32's watchdog is hardware; the simulator's is outside the device program too,
    so even a loop that never yields is reset, and the reset cause says so."""
    import shutil
    import time

    from firmware import DEVICE_DIR
    from simulator.virtual_device import VirtualDevice

    code = tmp_path / "code"
    code.mkdir()
    for name in ("main.py", "slots.py"):
        shutil.copy(DEVICE_DIR / name, code / name)
    (code / "app.py").write_text("""
def main(slot, trial):
    try:
        cause = open("reset.cause").read()
    except OSError:
        cause = "power_on"
    open("causes", "a").write(cause + "\\n")
    if cause != "watchdog":
        open("wdt", "w").write("300")  # started as board_unix.py starts it, and never fed
        while True:
            pass
""")
    d = VirtualDevice(tmp_path / "flash", {"dev": "pj-9"}, code=code)
    d.start()
    try:
        causes = tmp_path / "flash" / "causes"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (not causes.exists() or "watchdog" not in causes.read_text()):
            time.sleep(0.1)
        assert causes.read_text() == "power_on\nwatchdog\n"
        assert d.watchdog_resets == 1 and d.boots == 2
    finally:
        d.stop()
