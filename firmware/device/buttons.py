# One press is one rating: presses pass a debounce and a minimum gap before the flow sees
# them. Both boards feed this; the ESP32's pin interrupts only wake it (an interrupt
# handler must not allocate), and a press counts if the pin still reads pressed after
# the debounce time.
import asyncio
import time

QUEUE = 4  # presses waiting for the flow; more are bounces or impatience


class Buttons:
    def __init__(self, debounce_ms=30, min_gap_ms=800):
        self.debounce_ms = debounce_ms
        self.min_gap_ms = min_gap_ms
        self.ignored = 0  # presses inside the gap or beyond the queue, counted not lost silently
        self.pressed_at = 0  # ticks_ms of the last accepted press
        self._last = None
        self._queue = []
        self._irq = asyncio.ThreadSafeFlag()  # set from the pin interrupt
        self._ready = asyncio.Event()

    def wake(self, _pin=None):
        """Interrupt handler: something moved; the scan task decides what."""
        self._irq.set()

    def accept(self, n, now=None):
        """A debounced press of button n (1..5). Returns True if it became a press."""
        now = time.ticks_ms() if now is None else now
        if self._last is not None and time.ticks_diff(now, self._last) < self.min_gap_ms:
            self.ignored += 1
            return False
        if len(self._queue) >= QUEUE:
            self.ignored += 1
            return False
        self._last = now
        self._queue.append((n, now))
        self._ready.set()
        return True

    async def scan(self, read):
        """ESP32: after each wake, wait out the bounce and take the buttons still held.
        read() returns the pressed button (1..5) or 0."""
        while True:
            await self._irq.wait()
            await asyncio.sleep_ms(self.debounce_ms)
            n = read()
            if n:
                self.accept(n)

    async def get(self):
        """The next press as (button, ticks_ms when pressed)."""
        while not self._queue:
            self._ready.clear()
            await self._ready.wait()
        return self._queue.pop(0)
