# The five-button window evaluator: the citizen's flow, the outbox, and the link.
#
# Two tasks never wait on each other: the UI task takes presses and stores ratings in
# flash; the link task keeps MQTT up and drains the outbox. A rating is confirmed to the
# citizen once it is flushed to flash, and dropped from flash only on the gateway's ack.
import asyncio
import binascii
import json
import time
import random

import proto
from outbox import Outbox
from state import Counters
from mqtt import Client

FW_VERSION = "0.1.0"
REASON_TIMEOUT_S = 15
SEND_WINDOW = 8  # ratings published and awaiting the application ack at one time
RESEND_MS = 5000  # resend a rating not acked within this, doubling up to RESEND_MAX_MS
RESEND_MAX_MS = 60000
HEARTBEAT_S = 60
PERMANENT_REJECTIONS = ("replay",)  # the only rejection the gateway answers (protocol.md)

LEVEL_NAMES = ("非常满意", "满意", "基本满意", "不满意", "非常不满意")
REASON_NAMES = ("服务态度差", "办事效率低", "材料要求繁琐", "多次跑腿", "未兑现承诺")


class Evaluator:
    def __init__(self, board, cfg):
        self.board = board
        self.dev = cfg["dev"]
        self.hall = cfg["hall"]
        self.cfg = cfg
        self.signer = proto.Signer(binascii.unhexlify(cfg["key"]))
        self.outbox = Outbox()
        self.counters = Counters(floor=self.outbox.max_seq())
        self._up_ticks = time.ticks_ms()
        self._up_ms = 0
        self.tsync = False
        self.session = None
        self.rated_case = None
        self.sent = {}  # seq -> [ticks sent, resend interval]
        self.wake = asyncio.Event()
        self.reconnects = 0
        self.rejected = 0
        self.time_req = 0
        will = (self._t("status"), proto.encode({"v": 1, "state": "offline"}), 1, True)
        self.mqtt = Client(self.dev, cfg["broker"][0], cfg["broker"][1], cfg.get("user", self.dev),
                           cfg.get("password"), keepalive=30, will=will, on_message=self._message)

    def _t(self, leaf):
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
        self.show_idle()
        asyncio.create_task(self.link())
        asyncio.create_task(self.heartbeat())
        await self.ui()

    # -- the citizen's flow ----------------------------------------------------------
    def show_idle(self):
        s = self.session
        if s and s.get("case") and s["case"] != self.rated_case:
            self.board.show((s.get("item_name") or "", "办件 " + s["case"],
                             "工号 " + (s.get("staff_id") or "") + " " + (s.get("staff_name") or ""),
                             "请评价"))
        else:
            self.board.show(("欢迎评价", "窗口 " + (s.get("window") or "") if s else "", "", ""))

    async def ui(self):
        while True:
            b = await self.board.button()
            level = proto.LEVELS[b - 1]
            self.board.confirm(level)  # LED and buzzer at once; the record follows
            case = (self.session or {}).get("case") or ""
            if case and case == self.rated_case:
                self.board.event("already_rated", case=case)
                self.board.show(("该办件已评价", "办件 " + case, "", ""))
                continue
            reason = []
            if level in proto.BAD:
                reason = [await self.ask_reason()]
            seq = self.store(level, reason, case)
            self.rated_case = case or None
            self.board.event("confirmed", seq=seq, level=level, case=case, reason=reason)
            self.board.show(("谢谢您的评价", LEVEL_NAMES[b - 1], "", ""))
            self.wake.set()

    async def ask_reason(self):
        self.board.show(("请选择不满意原因",) + REASON_NAMES)
        try:
            b = await asyncio.wait_for(self.board.button(), REASON_TIMEOUT_S)
        except asyncio.TimeoutError:
            return "none"  # recorded explicitly: the citizen gave no reason
        return proto.REASONS[b - 1]

    def store(self, level, reason, case):
        seq = self.counters.next_seq()
        msg = {"dev": self.dev, "seq": seq, "level": level, "reason": reason, "case": case,
               "ts": self.board.time(), "tsync": self.tsync, "boot": self.counters.boot,
               "up": self.uptime(), "fw": FW_VERSION}
        self.outbox.append(seq, proto.encode(self.signer.signed("rating", msg)))
        return seq

    # -- the link --------------------------------------------------------------------
    async def link(self):
        backoff = 1000
        while True:
            try:
                await self.mqtt.connect()
            except OSError:
                self.board.event("link", up=False)
                # jittered exponential backoff: a hall's devices must not reconnect in step
                await asyncio.sleep_ms(backoff // 2 + random.getrandbits(16) % (backoff // 2 + 1))
                backoff = min(backoff * 2, 60000)
                continue
            backoff = 1000
            self.reconnects += 1
            try:
                await self.on_connect()
                await self.drain()
            except OSError:
                pass
            await self.mqtt.disconnect()
            self.board.event("link", up=False)

    async def on_connect(self):
        m = self.mqtt
        await m.subscribe([(self._t("ack"), 0), (self._t("session"), 1), (self._t("time"), 0),
                           (self._t("cmd"), 1)])
        await m.publish(self._t("status"), proto.encode(
            {"v": 1, "state": "online", "fw": FW_VERSION, "boot": self.counters.boot}), 1, True)
        await self.request_time()
        await self.send_health()
        self.sent = {}  # resend everything unacked on a new connection
        self.board.event("link", up=True)

    async def drain(self):
        """Publish unacked ratings from the outbox until the link drops."""
        while self.mqtt.connected:
            now = time.ticks_ms()
            due = [q for q, s in self.sent.items() if time.ticks_diff(now, s[0]) >= s[1]]
            room = SEND_WINDOW - len(self.sent) + len(due)
            if room > 0:
                skip = [q for q in self.sent if q not in due]
                for seq, body in self.outbox.pending(room, skip):
                    await self.mqtt.publish(self._t("rating"), body, 1)
                    s = self.sent.get(seq)
                    interval = min(s[1] * 2, RESEND_MAX_MS) if s else RESEND_MS
                    self.sent[seq] = [time.ticks_ms(), interval]
            self.wake.clear()
            try:
                await asyncio.wait_for_ms(self.wake.wait(), 500)  # also notices a lost link
            except asyncio.TimeoutError:
                pass

    # -- messages from the gateway ----------------------------------------------------
    def _message(self, topic, payload):
        try:
            msg = json.loads(payload)
        except ValueError:
            return
        if not isinstance(msg, dict):
            return
        leaf = topic.rsplit("/", 1)[-1]
        kind = {"ack": "ack", "session": "session", "time": "time", "cmd": "cmd"}.get(leaf)
        if kind is None or msg.get("dev") != self.dev or not self.signer.verify(kind, msg):
            self.board.event("bad_message", topic=topic)
            return
        if kind == "ack":
            self.on_ack(msg)
        elif kind == "session":
            self.session = msg
            if msg.get("rated") and msg.get("case"):
                self.rated_case = msg["case"]  # rated before, perhaps before a reboot
            self.board.event("session", case=msg.get("case") or "", window=msg.get("window"))
            self.show_idle()
        elif kind == "time":
            if msg.get("id") == self.time_req and isinstance(msg.get("now"), int):
                self.board.set_time(msg["now"])
                self.tsync = True
        elif kind == "cmd":
            self.on_command(msg)

    def on_ack(self, msg):
        seq = msg.get("seq")
        status = msg.get("status")
        if not isinstance(seq, int):
            return
        if status == "rejected" and msg.get("reason") not in PERMANENT_REJECTIONS:
            return  # e.g. a key mismatch: keep the rating until provisioning is fixed
        if status == "rejected":
            self.rejected += 1
            self.board.event("rejected", seq=seq, reason=msg.get("reason"))
        self.sent.pop(seq, None)
        if self.outbox.ack(seq):
            self.board.event("acked", seq=seq, status=status)
        self.wake.set()

    def on_command(self, msg):
        cmd = msg.get("cmd")
        if cmd == "reboot":
            self.board.reboot()
        elif cmd == "heartbeat":
            asyncio.create_task(self.send_health())
        elif cmd == "sync_time":
            asyncio.create_task(self.request_time())

    async def request_time(self):
        self.time_req += 1
        await self.mqtt.publish(self._t("time/req"), proto.encode(
            {"v": 1, "dev": self.dev, "id": self.time_req, "ts": self.board.time(),
             "boot": self.counters.boot, "up": self.uptime()}), 0)

    # -- health ----------------------------------------------------------------------
    async def send_health(self):
        free, block = self.board.heap()
        oldest = self.outbox.pending(1)
        age = 0
        if oldest:
            age = max(0, self.board.time() - json.loads(oldest[0][1])["ts"]) // 1000
        await self.mqtt.publish(self._t("health"), proto.encode({
            "v": 1, "dev": self.dev, "fw": FW_VERSION, "model": self.board.model,
            "up": self.uptime(), "boot": self.counters.boot, "reset": self.board.reset_reason(),
            "rssi": self.board.rssi(), "heap_free": free, "heap_block": block,
            "outbox": self.outbox.depth(), "oldest_s": age, "reconnects": self.reconnects - 1,
            "corrupt": self.outbox.corrupt, "rejected": self.rejected, "tsync": self.tsync,
            "ts": self.board.time()}), 0)

    async def heartbeat(self):
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            if self.mqtt.connected:
                try:
                    await self.send_health()
                except OSError:
                    pass
