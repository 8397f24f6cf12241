# The ESP32 board: the reference five-button evaluator (hardware/five-button.json, compiled
# into the module `pins` by `pingjia firmware build`). The tablet's board (board_tablet.py)
# shares its Wi-Fi, clock, speaker, watchdog and resets.
#
# Buttons interrupt on the falling edge and are read again after the debounce time;
# LEDs and the buzzer are PWM; the SSD1306 panel is driven over I2C from the shared
# framebuffer; Wi-Fi is a station joined without blocking the event loop; the clock
# is the RTC, set from the gateway's time sync.
import asyncio
import micropython
import gc
import time

import machine
import network
from machine import I2C, PWM, Pin

import pins
from buttons import Buttons
from display import Display

LED_ON = 65535
LED_IDLE = 3000  # the buttons glow faintly so they can be found
CONFIRM_MS = 1000
BEEP_MS = 80
WIFI_JOIN_MS = 15000
# 1970 to the port's epoch: older ESP32 builds count from 2000
EPOCH_S = 946684800 if time.gmtime(0)[0] == 2000 else 0

RESET_CAUSES = {
    machine.PWRON_RESET: "power_on",
    machine.HARD_RESET: "power_on",
    machine.WDT_RESET: "watchdog",
    machine.DEEPSLEEP_RESET: "deep_sleep",
    machine.SOFT_RESET: "soft",
}


class Panel:
    """SSD1306 128x64 over I2C, fed a MONO_VLSB framebuffer (its own page layout)."""

    INIT = (0xAE, 0x20, 0x00, 0x40, 0xA1, 0xA8, 63, 0xC8, 0xD3, 0x00, 0xDA, 0x12, 0xD5, 0x80,
            0xD9, 0xF1, 0xDB, 0x30, 0x81, 0xCF, 0xA4, 0xA6, 0x8D, 0x14, 0xAF)

    def __init__(self, i2c, addr):
        self.i2c = i2c
        self.addr = addr
        self._cmd = bytearray(2)
        self._cmd[0] = 0x80
        for c in self.INIT:
            self.command(c)

    def command(self, c):
        self._cmd[1] = c
        self.i2c.writeto(self.addr, self._cmd)

    def show(self, buf):
        for c in (0x21, 0, 127, 0x22, 0, 7):
            self.command(c)
        self.i2c.writevto(self.addr, (b"\x40", buf))


@micropython.viper
def _widen(src: ptr8, dst: ptr16, n: int):
    # 8-bit unsigned samples to the 16-bit signed ones I2S sends, a quarter volume below full
    for i in range(n):
        dst[i] = (src[i] - 128) << 6


class Board:
    model = "five-button"

    def __init__(self, cfg):
        self._common(cfg)
        b = pins.BOARD
        self.buttons = Buttons(b["debounce_ms"], b["min_gap_ms"])
        self._low = b["button_active_low"]
        pull = Pin.PULL_UP if b["button_pull"] == "up" else Pin.PULL_DOWN
        self._keys = [Pin(k["gpio"], Pin.IN, pull) for k in b["buttons"]]
        for k in self._keys:
            k.irq(self.buttons.wake, Pin.IRQ_FALLING if self._low else Pin.IRQ_RISING)
        self._leds = [PWM(Pin(k["led_gpio"]), freq=b["led_pwm_hz"], duty_u16=LED_IDLE) for k in b["buttons"]]
        self._buzzer = PWM(Pin(b["buzzer"]["gpio"]), freq=b["buzzer"]["freq_hz"], duty_u16=0)
        self._status = Pin(b["status_led_gpio"], Pin.OUT, value=0)
        d = b["display"]
        i2c = I2C(d["i2c"]["id"], sda=Pin(d["i2c"]["sda"]), scl=Pin(d["i2c"]["scl"]), freq=d["i2c"]["freq"])
        self.display = Display(cfg["font"])
        try:
            self._panel = Panel(i2c, d["i2c"]["addr"])
        except OSError:
            self._panel = None  # no panel answering: rate blind rather than not at all
        self._light = None

    def _common(self, cfg):
        b = pins.BOARD
        wifi = cfg["wifi"]
        self._ssid, self._psk = wifi.get("ssid"), wifi.get("psk")
        self.wlan = network.WLAN(network.STA_IF)
        self._said = None  # the Wi-Fi problem last printed
        self._wdt = None
        self._audio = b.get("audio")  # an I2S amplifier (MAX98357A), where the board has one
        fitted = self._audio is not None and not self._audio.get("optional")
        self.audio = bool(self._audio) and (fitted if cfg["voice"] is None else bool(cfg["voice"]))

    async def start(self):
        asyncio.create_task(self.buttons.scan(self._read))
        asyncio.create_task(self._scroller())

    def _read(self):
        for i, k in enumerate(self._keys):
            if k.value() == (0 if self._low else 1):
                return i + 1
        return 0

    def event(self, name, **fields):
        pass  # the simulator's channel; nothing listens on real hardware

    # -- display, LEDs, buzzer --------------------------------------------------------
    def _flush(self):
        if self._panel is not None:
            try:
                self._panel.show(self.display.buf)
            except OSError:
                pass  # a loose display cable must not stop the ratings

    def show(self, lines):
        self.display.show(lines)
        self._flush()

    def set_online(self, online):
        self._status.value(1 if online else 0)
        if self.display.set_offline(not online):
            self._flush()

    async def _scroller(self):
        while True:
            await asyncio.sleep_ms(300)
            if self.display.scroll():
                self._flush()

    # -- speaker: an I2S amplifier, fed through asyncio so that a press never waits on it --
    def audio_open(self, name, rate):
        from machine import I2S

        a = self._audio
        i2s = I2S(a["i2s_id"], sck=Pin(a["sck"]), ws=Pin(a["ws"]), sd=Pin(a["sd"]), mode=I2S.TX, bits=16,
                  format=I2S.MONO, rate=rate, ibuf=a["ibuf"])
        return [i2s, asyncio.StreamWriter(i2s), bytearray(1024 * 2)]

    async def audio_write(self, out, buf, n):
        _widen(buf, out[2], n)
        out[1].write(out[2] if 2 * n == len(out[2]) else memoryview(out[2])[:2 * n])
        await out[1].drain()

    def audio_close(self, out):
        out[0].deinit()

    def confirm(self, button):
        """The pressed button's LED and a beep, at once."""
        for n, led in enumerate(self._leds):
            led.duty_u16(LED_ON if n == button - 1 else 0)
        self._buzzer.duty_u16(32768)
        if self._light:
            self._light.cancel()  # the previous press's timer must not cut this one short
        self._light = asyncio.create_task(self._lights_back())

    async def _lights_back(self):
        await asyncio.sleep_ms(BEEP_MS)
        self._buzzer.duty_u16(0)
        await asyncio.sleep_ms(CONFIRM_MS - BEEP_MS)
        for led in self._leds:
            led.duty_u16(LED_IDLE)

    # -- network ----------------------------------------------------------------------
    async def net_up(self):
        """Join the Wi-Fi if needed, polling so the buttons stay live; True when up."""
        w = self.wlan
        if w.isconnected():
            return True
        if not self._ssid:
            return False
        w.active(True)
        try:
            w.connect(self._ssid, self._psk)
        except OSError:
            pass  # already connecting
        t0 = time.ticks_ms()
        while time.ticks_diff(time.ticks_ms(), t0) < WIFI_JOIN_MS:
            if w.isconnected():
                self._said = None
                return True
            await asyncio.sleep_ms(200)
        self._say_problem(w.status())
        w.disconnect()
        return False

    def _say_problem(self, status):
        # once per kind, on the console: what a technician's tool reads (firmware/install.py)
        why = {network.STAT_WRONG_PASSWORD: "wrong password", network.STAT_NO_AP_FOUND: "no network"}.get(
            status, "no link (status %s)" % status)
        if why != self._said:
            self._said = why
            print("pingjia: wifi: %s (%s)" % (why, self._ssid))

    def rssi(self):
        try:
            return self.wlan.status("rssi")
        except (OSError, ValueError):
            return -127

    # -- clock, health, resets ----------------------------------------------------------
    def time(self):
        """The device clock, Unix milliseconds (the RTC, set by set_time)."""
        return time.time_ns() // 1000000 + EPOCH_S * 1000

    def set_time(self, now_ms):
        t = time.gmtime(now_ms // 1000 - EPOCH_S)
        machine.RTC().datetime((t[0], t[1], t[2], t[6], t[3], t[4], t[5], (now_ms % 1000) * 1000))

    def heap(self):
        gc.collect()
        free = gc.mem_free()
        return free, free  # the port does not expose its largest free block

    def reset_cause(self):
        return RESET_CAUSES.get(machine.reset_cause(), "panic")

    def reboot(self, cause=None):
        machine.reset()

    def wdt_start(self, timeout_ms):
        self._wdt = machine.WDT(timeout=timeout_ms)

    def wdt_feed(self):
        self._wdt.feed()
