# The tablet's touches: one tap is one choice. A finger resting on the glass or bouncing
# off it reads as many taps, so taps closer together than the minimum gap count as one
# (counted in `ignored`). Both boards feed this; the ESP32's touch controller interrupt
# only wakes the scan (an interrupt handler must not allocate).
import asyncio
import time

QUEUE = 4  # taps waiting for the flow; more are impatience


class Touch:
    def __init__(self, min_gap_ms=250):
        self.min_gap_ms = min_gap_ms
        self.ignored = 0
        self._last = None
        self._queue = []
        self._irq = asyncio.ThreadSafeFlag()
        self._ready = asyncio.Event()

    def wake(self, _pin=None):
        self._irq.set()

    def accept(self, x, y, now=None):
        """A tap at (x, y). Returns True if it became a tap."""
        now = time.ticks_ms() if now is None else now
        if (self._last is not None and time.ticks_diff(now, self._last) < self.min_gap_ms) \
                or len(self._queue) >= QUEUE:
            self.ignored += 1
            return False
        self._last = now
        self._queue.append((x, y, now))
        self._ready.set()
        return True

    async def scan(self, read):
        """ESP32: read() gives the touch point (x, y), or None once lifted. A touch counts
        when the finger comes down; while it rests the controller is polled until it lifts,
        so a held finger is one tap, not one each report."""
        while True:
            await self._irq.wait()
            down = False
            while True:
                p = read()
                if p is None:
                    break
                if not down:
                    down = True
                    self.accept(p[0], p[1])
                await asyncio.sleep_ms(30)

    async def get(self):
        """The next tap as (x, y, ticks_ms when touched)."""
        while not self._queue:
            self._ready.clear()
            await self._ready.wait()
        return self._queue.pop(0)
