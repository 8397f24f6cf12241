# The unix board: the evaluator's hardware as the simulator drives it.
#
# If config "ctl" names host:port, the board connects there and speaks JSON lines:
#   simulator -> device  {"button": 1..5}       a press of one of the five buttons
#   device -> simulator  {"ev": NAME, ...}      display, confirmed, already_rated, ...
# Without "ctl" the device runs with no buttons (useful for serial-tool sessions).
import asyncio
import json
import time
import gc

class Board:
    model = "five-button"

    def __init__(self, cfg):
        self.ctl = cfg.get("ctl")
        self.dev = cfg.get("dev")
        self._presses = []
        self._press_flag = asyncio.Event()
        self._w = None
        self._events = []  # bounded: events are for the simulator, never worth memory
        self._event_flag = asyncio.Event()
        self._clock_offset = 0  # the unix port cannot set the host clock, so it keeps an offset
        self.lines = ()

    async def start(self):
        if self.ctl:
            asyncio.create_task(self._control())

    async def _control(self):
        host, port = self.ctl.rsplit(":", 1)
        r, self._w = await asyncio.open_connection(host, int(port))
        self._events.insert(0, json.dumps({"ev": "hello", "dev": self.dev}).encode() + b"\n")
        asyncio.create_task(self._sender())
        while True:
            line = await r.readline()
            if not line:
                break
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            b = msg.get("button")
            if isinstance(b, int) and 1 <= b <= 5 and len(self._presses) < 16:
                self._presses.append(b)
                self._press_flag.set()
        self._w = None

    async def button(self):
        """The next button press, 1 (best) .. 5 (worst)."""
        while not self._presses:
            self._press_flag.clear()
            await self._press_flag.wait()
        return self._presses.pop(0)

    def event(self, name, **fields):
        if self.ctl and len(self._events) < 64:
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

    def show(self, lines):
        self.lines = lines
        self.event("display", lines=lines)

    def confirm(self, level):
        self.event("led", level=level)

    def time(self):
        """The device clock, Unix milliseconds."""
        return time.time_ns() // 1000000 + self._clock_offset

    def set_time(self, now_ms):
        self._clock_offset = now_ms - time.time_ns() // 1000000

    def rssi(self):
        return -50

    def reset_reason(self):
        return "power_on"

    def heap(self):
        gc.collect()
        return gc.mem_free(), gc.mem_free()

    def reboot(self):
        import sys
        sys.exit(3)
