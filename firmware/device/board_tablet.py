# The ESP32-S3 tablet board (hardware/tablet.json, the module `pins` of a tablet build):
# a 480x320 ST7796 panel over SPI fed from the canvas in PSRAM, an FT6336U capacitive
# touch controller over I2C, and the MAX98357A speaker. Wi-Fi, clock, speaker, watchdog
# and resets are the five-button board's (board_esp32.py).
#
# Only a changed screen is sent: drawing marks the canvas dirty, and a task sends it
# whole (300 KB at 40 MHz, about 60 ms) a moment later, so a tap is never held up by
# the SPI bus and several changes in a row cost one transfer.
import asyncio
import time

from machine import I2C, SPI, Pin

import board_esp32
import pins
from canvas import H, W, Canvas
from touch import Touch

FLUSH_MS = 15  # a change waits this long for more before the panel gets it


class Panel:
    """ST7796 over SPI: RGB565, the canvas's byte order."""

    def __init__(self, d):
        s = d["spi"]
        self.spi = SPI(s["id"], baudrate=s["baudrate"], sck=Pin(s["sck"]), mosi=Pin(s["mosi"]), miso=Pin(s["miso"]))
        self.cs = Pin(d["cs"], Pin.OUT, value=1)
        self.dc = Pin(d["dc"], Pin.OUT, value=0)
        self.backlight = Pin(d["backlight"], Pin.OUT, value=0)
        rst = Pin(d["rst"], Pin.OUT, value=0)
        time.sleep_ms(10)
        rst.value(1)
        time.sleep_ms(120)
        self.command(0x01)  # software reset
        time.sleep_ms(120)
        self.command(0x11)  # out of sleep
        time.sleep_ms(120)
        self.command(0xF0, b"\xc3")  # command set 2, parts I and II, open
        self.command(0xF0, b"\x96")
        self.command(0x36, bytes([d["madctl"]]))  # orientation: landscape, BGR panel
        self.command(0x3A, b"\x55")  # 16 bits a pixel
        if d["invert"]:
            self.command(0x21)  # IPS panels show true colours inverted
        self.command(0xF0, b"\x3c")  # and closed again
        self.command(0xF0, b"\x69")
        self.command(0x29)  # display on
        self.window = bytearray(4)
        self.backlight.value(1)

    def command(self, c, data=None):
        self.cs.value(0)
        self.dc.value(0)
        self.spi.write(bytes([c]))
        if data:
            self.dc.value(1)
            self.spi.write(data)
        self.cs.value(1)

    def show(self, buf):
        w = self.window
        w[0], w[1], w[2], w[3] = 0, 0, (W - 1) >> 8, (W - 1) & 0xFF
        self.command(0x2A, w)
        w[2], w[3] = (H - 1) >> 8, (H - 1) & 0xFF
        self.command(0x2B, w)
        self.cs.value(0)
        self.dc.value(0)
        self.spi.write(b"\x2c")  # memory write: the pixels follow
        self.dc.value(1)
        self.spi.write(buf)
        self.cs.value(1)


class TouchPanel:
    """FT6336U: the first touch point, turned to the canvas's landscape coordinates."""

    def __init__(self, t):
        c = t["i2c"]
        rst = Pin(t["rst"], Pin.OUT, value=0)
        time.sleep_ms(5)
        rst.value(1)
        time.sleep_ms(300)  # the controller boots
        self.i2c = I2C(c["id"], sda=Pin(c["sda"]), scl=Pin(c["scl"]), freq=c["freq"])
        self.addr = c["addr"]
        self.t = t
        self.buf = bytearray(5)  # TD_STATUS, P1_XH, P1_XL, P1_YH, P1_YL
        self.irq = Pin(t["int"], Pin.IN, Pin.PULL_UP)

    def read(self):
        b = self.buf
        try:
            self.i2c.readfrom_mem_into(self.addr, 0x02, b)
        except OSError:
            return None  # a glitch on the bus reads as no touch, never as a tap
        n = b[0] & 0x0F
        if n == 0 or n > 2:
            return None
        x, y = (b[1] & 0x0F) << 8 | b[2], (b[3] & 0x0F) << 8 | b[4]
        t = self.t
        if t["swap_xy"]:
            x, y = y, x
        if t["flip_x"]:
            x = W - 1 - x
        if t["flip_y"]:
            y = H - 1 - y
        return (x, y) if 0 <= x < W and 0 <= y < H else None


class Board(board_esp32.Board):
    model = "tablet"

    def __init__(self, cfg):
        self._common(cfg)
        b = pins.BOARD
        self.online = None
        self.canvas = Canvas(cfg["font_large"])
        self.touch = Touch(b["touch"]["min_gap_ms"])
        self._dirty = asyncio.ThreadSafeFlag()
        try:
            self._panel = Panel(b["display"])
        except OSError:
            self._panel = None  # no panel answering: the touch and the ratings still work
        self._touch = TouchPanel(b["touch"])
        self._touch.irq.irq(self.touch.wake, Pin.IRQ_FALLING)

    async def start(self):
        asyncio.create_task(self.touch.scan(self._touch.read))
        asyncio.create_task(self._flusher())

    async def _flusher(self):
        while True:
            await self._dirty.wait()
            await asyncio.sleep_ms(FLUSH_MS)
            if self._panel is not None:
                try:
                    self._panel.show(self.canvas.buf)
                except OSError:
                    pass  # a loose cable must not stop the ratings

    def show_screen(self, lines, targets):
        self._dirty.set()

    def set_online(self, online):
        if self.online != online:
            self.online = online
            self.canvas.mark(not online)
            self._dirty.set()

    def confirm(self, button):
        pass  # the screen answers the tap itself
