# The unix board: the evaluator's hardware as the simulator drives it.
#
# If config "ctl" names host:port, the board connects there and speaks JSON lines:
#   simulator -> device  {"button": 1..5}      a press of one of the five buttons
#                        {"touch": [x, y]}     a tap on the tablet's screen (board_unix_tablet.py)
#                        {"screen": true}      send the framebuffer (event "screen"); the
#                                              tablet's 300 KB go to the file screen.rgb565
#                        {"wifi": false|true}  the Wi-Fi link lost or back
#                        {"clock_ms": N}       the device clock drifts by N ms
#                        {"heap": true}        peak live heap so far (event "heap"), when
#                                              config "heap_watch_ms" samples it
#   device -> simulator  {"ev": NAME, ...}     display, confirmed, already_rated, ...
# Without "ctl" the device runs with no buttons (useful for serial-tool sessions).
# Config "model" says which evaluator it is: "five-button", or "tablet" (touch screen:
# board_unix_tablet.py, this board with the tablet's screen).
# The screen is the same framebuffer and font code as the ESP32's, only not sent to a
# panel; reset causes and the watchdog are emulated with a file, as RTC memory would be.
import asyncio
import binascii
import json
import struct
import os
import sys
import time
import gc

from buttons import Buttons

RESET_FILE = "reset.cause"  # the unix port's stand-in for the ESP32's reset-cause register
WDT_FILE = "wdt"  # the simulator's hardware watchdog
EXIT_REBOOT = 3  # the simulator restarts a device that exits with this
EVENTS = 64  # events waiting for the simulator's socket
EVENTS_KEPT = 96  # ... of which the last 32 only for the answers to a press or a tap
ANSWERS = ("confirmed", "ignored", "already_rated", "reason", "details", "display", "full")


def _wav_header(rate, n):
    """A WAV header for n samples of 8-bit unsigned mono PCM."""
    return (b"RIFF" + struct.pack("<I", 36 + n) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate, 1, 8)
            + b"data" + struct.pack("<I", n))


class Board:
    model = "five-button"  # board_unix_tablet.py: the tablet's

    def __init__(self, cfg):
        self.ctl = cfg["ctl"]
        self.dev = cfg["dev"]
        self.online = None  # not known yet: the first set_online draws the mark
        self._ui(cfg)
        self.wifi = True
        self._w = None
        self._events = []  # bounded: events are for the simulator, never worth memory
        self._event_flag = asyncio.Event()
        self._clock_offset = 0  # the unix port cannot set the host clock, so it keeps an offset
        wifi = cfg["wifi"]
        self._ssid, self._psk = wifi.get("ssid"), wifi.get("psk")
        self._said = None
        # a speaker fitted (the tablet's always is): what it would play goes to voice.wav
        self.audio = self.model == "tablet" if cfg["voice"] is None else bool(cfg["voice"])
        self._wdt_ms = 0
        self._heap_watch = cfg["heap_watch_ms"]
        self.heap_peak = 0
        self.heap_start = 0  # live heap when the app started: mostly the modules' bytecode

    def _ui(self, cfg):
        from display import Display

        self.buttons = Buttons(cfg["debounce_ms"], cfg["min_gap_ms"])
        self.display = Display(cfg["font"])

    async def start(self):
        if self.ctl:
            asyncio.create_task(self._control())
        self._ui_tasks()
        if self._heap_watch:
            asyncio.create_task(self._heap_sampler())

    async def _heap_sampler(self):
        # live data only: collect, then read what is still allocated
        gc.collect()
        self.heap_start = gc.mem_alloc()
        while True:
            gc.collect()
            self.heap_peak = max(self.heap_peak, gc.mem_alloc())
            await asyncio.sleep_ms(self._heap_watch)

    async def _control(self):
        host, port = self.ctl.rsplit(":", 1)
        r, self._w = await asyncio.open_connection(host, int(port))
        self._events.insert(0, json.dumps({"ev": "hello", "dev": self.dev}).encode() + b"\n")
        asyncio.create_task(self._sender())
        while True:
            try:
                line = await r.readline()
                if not line:
                    break
                self._command(line)
            except MemoryError as e:  # the simulator's wire, not the device's: it must outlive a full heap
                gc.collect()
                print("pingjia: control channel:", repr(e))
        self._w = None

    def _command(self, line):
        try:
            msg = json.loads(line)
        except ValueError:
            return
        if isinstance(msg, dict):
            self._do(msg)

    def _do(self, msg):
        self._input(msg)
        if msg.get("screen"):
            self._send_screen()
        if msg.get("heap"):
            gc.collect()
            self.event("heap", peak=self.heap_peak, start=self.heap_start, now=gc.mem_alloc(),
                       free=gc.mem_free())
        if isinstance(msg.get("clock_ms"), int):
            self._clock_offset += msg["clock_ms"]
        if "wifi" in msg:
            self.wifi = bool(msg["wifi"])

    def _input(self, msg):
        b = msg.get("button")
        if isinstance(b, int) and 1 <= b <= 5 and not self.buttons.accept(b):
            self.event("ignored", button=b)  # inside the minimum gap: one press, one rating

    def event(self, name, **fields):
        # bounded: a burst of acks (a backlog drained) may drop acks' events, but a citizen's
        # press answered or ignored is what the simulator counts, so those get room of their own
        if self.ctl and len(self._events) < (EVENTS_KEPT if name in ANSWERS else EVENTS):
            fields["ev"] = name
            self._events.append(json.dumps(fields).encode() + b"\n")
            self._event_flag.set()

    async def _sender(self):
        w = self._w
        while self._w is w:
            while self._events:
                w.write(self._events.pop(0))
            await w.drain()
            self._event_flag.clear()
            if not self._events:
                await self._event_flag.wait()

    def _send_screen(self):
        self.event("screen", fb=binascii.b2a_base64(self.display.buf, newline=False).decode())

    # -- display, LEDs, buzzer --------------------------------------------------------
    def show(self, lines):
        self.display.show(lines)
        self.event("display", lines=lines)

    def set_online(self, online):
        if self.online == online:
            return
        self.online = online
        self._mark(not online)
        self.event("offline", on=not online)

    def _mark(self, offline):
        self.display.set_offline(offline)

    def _ui_tasks(self):
        asyncio.create_task(self._scroller())

    async def _scroller(self):
        while True:
            await asyncio.sleep_ms(300)
            self.display.scroll()

    def confirm(self, button):
        self.event("led", button=button)

    # -- speaker: what an I2S amplifier would play, as a WAV file, in real time -------
    def audio_open(self, name, rate):
        f = open("voice.wav", "wb")
        f.write(_wav_header(rate, 0))
        return [f, name, rate, 0]

    async def audio_write(self, out, buf, n):
        out[0].write(buf if n == len(buf) else buf[:n])
        out[3] += n
        await asyncio.sleep_ms(n * 1000 // out[2])  # as long as the speaker takes to say it

    def audio_close(self, out):
        f = out[0]
        f.seek(0)
        f.write(_wav_header(out[2], out[3]))
        f.close()
        self.event("voice_done", clip=out[1], samples=out[3])

    # -- network ----------------------------------------------------------------------
    async def net_up(self):
        """True once the Wi-Fi link is up (the simulator can take it away). A config that
        names a Wi-Fi joins the simulated hall's, PINGJIA_SIM_WIFI="ssid:password", and
        says on the console why not, as the ESP32 board does."""
        if self._ssid is not None:
            hall = (os.getenv("PINGJIA_SIM_WIFI") or ":").split(":", 1)
            why = "no network" if hall[0] != self._ssid else "wrong password" if hall[1] != self._psk else None
            if why:
                if why != self._said:
                    self._said = why
                    print("pingjia: wifi: %s (%s)" % (why, self._ssid))
                await asyncio.sleep_ms(1000)
                return False
        return self.wifi

    def rssi(self):
        return -50 if self.wifi else -127

    # -- clock, health, resets ----------------------------------------------------------
    def time(self):
        """The device clock, Unix milliseconds."""
        return time.time_ns() // 1000000 + self._clock_offset

    def set_time(self, now_ms):
        self._clock_offset = now_ms - time.time_ns() // 1000000

    def heap(self):
        gc.collect()
        return gc.mem_free(), gc.mem_free()

    def reset_cause(self):
        """What the last reset was; a power cut leaves no record, so it reads power_on."""
        try:
            with open(RESET_FILE) as f:
                cause = f.read()
            os.remove(RESET_FILE)
            return cause
        except OSError:
            return "power_on"

    def reboot(self, cause=None):
        if cause:  # what the reset-cause register would say; machine.reset() says nothing
            with open(RESET_FILE, "w") as f:
                f.write(cause)
        sys.exit(EXIT_REBOOT)

    # The ESP32's watchdog is hardware, outside the program: here the simulator is. The
    # file "wdt" holds the timeout and each feed rewrites it; the simulator resets a
    # device whose file is older than its timeout (virtual_device.py), even one whose
    # loop never yields. main.py starts it the same way, before a trial's import.
    def wdt_start(self, timeout_ms):
        self._wdt_ms = timeout_ms
        self.wdt_feed()

    def wdt_feed(self):
        with open(WDT_FILE, "w") as f:
            f.write(str(self._wdt_ms))
