# The watchdog's keeper: it feeds the hardware watchdog only while every watched task has
# checked in within its own deadline. A task stuck on an await (a half-open socket, a
# lost event) stops the feeding, and the watchdog resets the device; a loop that never
# yields starves the supervisor too, with the same end.
import asyncio
import time

WDT_MS = 30000
CHECK_MS = 2000


class Supervisor:
    def __init__(self, board, wdt_ms=WDT_MS):
        self.board = board
        self.wdt_ms = wdt_ms
        self._tasks = {}  # name -> [deadline ms, last check-in ticks]
        self.late = None  # the first task found late, for the record

    def watch(self, name, deadline_ms):
        self._tasks[name] = [deadline_ms, time.ticks_ms()]

    def alive(self, name):
        self._tasks[name][1] = time.ticks_ms()

    def healthy(self):
        now = time.ticks_ms()
        for name, (deadline, last) in self._tasks.items():
            if time.ticks_diff(now, last) > deadline:
                self.late = name
                return False
        return True

    async def run(self):
        self.board.wdt_start(self.wdt_ms)
        while True:
            if self.healthy():
                self.board.wdt_feed()
            await asyncio.sleep_ms(CHECK_MS)
