# The window evaluator, five-button or tablet: the parts of the path of one rating, put together.
#
#   flow.py      the citizen presses; the rating is flushed to the outbox, then confirmed
#   tablet.py    the tablet's screens and taps, on the same flow
#   outbox.py    ratings in flash until the gateway has them (records.py: their form)
#   link.py      MQTT over TLS kept up; the outbox drained, each rating signed as sent
#   messages.py  the gateway's acks (a rating leaves the outbox), sessions, time, commands
#   health.py    the heartbeat
#   update.py    over-the-air updates: staged in the other slot, run on trial, committed
#
# The flow and the link never wait on each other; a supervisor feeds the watchdog while
# the flow, the link and the heartbeat all keep checking in.
import asyncio
import binascii
import time

import proto
import records
from flow import UI_TICK_MS, Flow
from health import HEARTBEAT_S, Health
from link import Link
from messages import Messages, reset_cause
from outbox import Outbox
from state import Counters
from state import write_text
from supervisor import Supervisor
from update import Updater

FW_VERSION = "0.1.0"


class Evaluator:
    def __init__(self, board, cfg, slot=".", trial=False):
        self.board = board
        self.dev = cfg["dev"]
        self.hall = cfg["hall"]
        self.fw = FW_VERSION
        self.signer = proto.Signer(binascii.unhexlify(cfg["key"]))
        self.reset, last_cmd = reset_cause(board)
        write_text("last_reset", self.reset)  # for a technician's `pingjia device info`
        self.outbox = Outbox()
        last = self.outbox.last()
        self.counters = Counters(floor=last[0] if last else 0)
        self.header = records.header(self.counters.boot, FW_VERSION)
        self._up_ticks = time.ticks_ms()
        self._up_ms = 0
        self.tsync = False  # the clock was set by the gateway, this boot
        self.session = None  # the window's session, as the gateway last sent it
        self.rated_case = None  # the case this device rated last: offered no second time
        last = last and records.decode(self.dev, *last)
        if last:  # the newest rating's case stays rated across a reboot
            self.rated_case = last["case"] or None
        self.supervisor = Supervisor(board, cfg["wdt_ms"])
        self.voice = None  # a board without a speaker keeps the module out of its RAM
        if board.audio:
            from voice import Voice

            self.voice = Voice(board, slot)
        self.photo = None  # the tablet's staff photo (photo.py)
        if board.model == "tablet":  # the touch screen's flow (the five-button's stays out of its way)
            from photo import Photo
            from tablet import TabletFlow

            self.photo = Photo(self)
            self.flow = TabletFlow(self, cfg["reason_timeout_s"], cfg["thanks_ms"])
        else:
            self.flow = Flow(self, cfg["reason_timeout_s"])
        self.messages = Messages(self, last_cmd)
        self.updater = Updater(self, slot, trial, cfg["trial_s"])
        self.link = Link(self, cfg, self.messages.handle)
        self.health = Health(self)

    def topic(self, leaf):
        return proto.topic(self.hall, self.dev, leaf)

    def uptime(self):
        """Milliseconds since boot. ticks_ms wraps (every 12.4 days on the ESP32), so the
        uptime is accumulated from differences; the heartbeat calls this every minute."""
        now = time.ticks_ms()
        self._up_ms += time.ticks_diff(now, self._up_ticks)
        self._up_ticks = now
        return self._up_ms

    async def run(self):
        await self.board.start()
        self.board.event("boot", boot=self.counters.boot, reset=self.reset, fw=FW_VERSION)
        self.board.set_online(False)
        self.flow.show_idle()
        sv = self.supervisor
        sv.watch("ui", UI_TICK_MS + self.flow.reason_timeout_s * 1000 + 10000)
        sv.watch("link", 90000)  # longer than the longest backoff plus a connect timeout
        sv.watch("heartbeat", HEARTBEAT_S * 2500)
        asyncio.create_task(self.link.run())
        asyncio.create_task(self.health.run())
        asyncio.create_task(sv.run())
        if self.updater.trial:
            asyncio.create_task(self.updater.run_trial())
        await self.flow.run()
