# The five-button window evaluator: the citizen's flow, the outbox, and the link.
#
# Two tasks never wait on each other: the UI task takes presses and stores ratings in
# flash; the link task keeps MQTT up and drains the outbox. A rating is confirmed to the
# citizen once it is flushed to flash, and dropped from flash only on the gateway's ack.
# A supervisor feeds the watchdog while all of them keep checking in.
import asyncio
import binascii
import json
import os
import time
import random

import proto
from outbox import Outbox
from state import Counters
from mqtt import Client
from supervisor import Supervisor

FW_VERSION = "0.1.0"
REASON_TIMEOUT_S = 15
SEND_WINDOW = 8  # ratings published and awaiting the application ack at one time
RESEND_MS = 5000  # resend a rating not acked within this, doubling up to RESEND_MAX_MS
RESEND_MAX_MS = 60000
HEARTBEAT_S = 60
DROP_ON = ("stored", "duplicate", "held")  # acks that say the gateway has the rating
INTENT_FILE = "reboot.intent"  # written before a reboot the device chose, read at boot
UI_TICK_MS = 5000  # the UI task checks in at least this often while waiting for a press

LEVEL_NAMES = ("非常满意", "满意", "基本满意", "不满意", "非常不满意")  # button order
REASON_SCREEN = ("请选择原因", "1态度  2效率", "3材料  4跑腿", "5未兑现承诺")  # proto.REASONS order


def _is_ipv4(host):
    parts = host.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts)


def _tls(ca):
    """A TLS context that accepts only a broker certified by the hall CA (base64 DER in
    the config), or None where the hall runs without TLS."""
    if not ca:
        return None
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=binascii.a2b_base64(ca))
    return ctx


class Evaluator:
    def __init__(self, board, cfg):
        self.board = board
        self.dev = cfg["dev"]
        self.hall = cfg["hall"]
        self.signer = proto.Signer(binascii.unhexlify(cfg["key"]))
        self.reset = self._reset_cause()
        self.outbox = Outbox()
        last = self.outbox.last()
        self.counters = Counters(floor=last[0] if last else 0)
        self.header = b"%d,%s" % (self.counters.boot, FW_VERSION)
        self._up_ticks = time.ticks_ms()
        self._up_ms = 0
        self.tsync = False
        self.session = None
        self.rated_case = None
        last = last and self._record(*last)
        if last:  # the newest rating's case stays rated across a reboot
            self.rated_case = last["case"] or None
        self.supervisor = Supervisor(board, cfg.get("wdt_ms", 30000))
        self.sent = {}  # seq -> [ticks sent, resend interval]
        self.wake = asyncio.Event()
        self.reconnects = 0
        self.held = 0  # ratings the gateway stored but holds for an admin, since boot
        self.time_req = 0
        host = cfg["broker"][0]
        if not _is_ipv4(host):
            # a name would need a DNS lookup, which blocks the whole event loop on the ESP32
            raise ValueError("config broker must be an IPv4 address, not %r" % host)
        will = (self._t("status"), proto.encode({"v": 1, "state": "offline"}), 1, True)
        self.mqtt = Client(self.dev, cfg["broker"][0], cfg["broker"][1], cfg.get("user", self.dev),
                           cfg.get("password"), keepalive=30, will=will, on_message=self._message,
                           tls=_tls(cfg.get("ca")))

    def _t(self, leaf):
        return proto.topic(self.hall, self.dev, leaf)

    def uptime(self):
        """Milliseconds since boot. ticks_ms wraps (every 12.4 days on the ESP32), so the
        uptime is accumulated from differences; the heartbeat calls this every minute."""
        now = time.ticks_ms()
        self._up_ms += time.ticks_diff(now, self._up_ticks)
        self._up_ticks = now
        return self._up_ms

    def _reset_cause(self):
        # the intent file names the command that asked for the reboot, so that command,
        # delivered again by the broker, does not reboot the device again
        self.last_cmd = None
        try:
            with open(INTENT_FILE) as f:
                self.last_cmd = f.read()
            os.remove(INTENT_FILE)
            return "intended"
        except OSError:
            return self.board.reset_cause()

    async def reboot(self, cmd_id):
        with open(INTENT_FILE, "w") as f:
            f.write(cmd_id)
        await asyncio.sleep_ms(500)  # let the command's PUBACK go out first
        self.board.reboot()

    async def run(self):
        await self.board.start()
        self.board.event("boot", boot=self.counters.boot, reset=self.reset, fw=FW_VERSION)
        self.board.set_online(False)
        self.show_idle()
        sv = self.supervisor
        sv.watch("ui", UI_TICK_MS + REASON_TIMEOUT_S * 1000 + 10000)
        sv.watch("link", 90000)  # longer than the longest backoff plus a connect timeout
        sv.watch("heartbeat", HEARTBEAT_S * 2500)
        asyncio.create_task(self.link())
        asyncio.create_task(self.heartbeat())
        asyncio.create_task(sv.run())
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

    async def press(self):
        """The next press as (button, ticks when pressed), checking in while waiting."""
        while True:
            self.supervisor.alive("ui")
            try:
                return await asyncio.wait_for_ms(self.board.buttons.get(), UI_TICK_MS)
            except asyncio.TimeoutError:
                pass

    async def ui(self):
        while True:
            b, t0 = await self.press()
            level = proto.LEVELS[b - 1]
            self.board.confirm(b)  # LED and buzzer at once: the press was felt
            case = (self.session or {}).get("case") or ""
            if case and case == self.rated_case:
                self.board.event("already_rated", case=case)
                self.board.show(("该办件已评价", "办件 " + case, "", ""))
                continue
            if self.outbox.is_full():
                self.show_full()
                continue
            reason = 0  # no reason asked: a good review
            if level in proto.BAD:
                reason, t0 = await self.ask_reason()
            try:
                seq = self.store(b, reason, case)
            except OSError:
                self.show_full()  # not stored, so not confirmed: the citizen sees it failed
                continue
            self.rated_case = case or None
            # the confirmation follows the flush: a rating the citizen saw confirmed is in flash
            self.board.show(("谢谢您的评价", LEVEL_NAMES[b - 1], "", ""))
            self.board.event("confirmed", seq=seq, boot=self.counters.boot, level=level, case=case,
                             reason=self._reasons(reason), ms=time.ticks_diff(time.ticks_ms(), t0))
            self.wake.set()

    def show_full(self):
        self.board.event("full", depth=self.outbox.depth())
        self.board.show(("暂停评价", "存储已满", "请联系工作人员", ""))

    async def ask_reason(self):
        """(reason index 1..5, or -1 for the timeout's explicit "none"; ticks of the press)."""
        self.board.show(REASON_SCREEN)
        self.board.event("reason")
        self.supervisor.alive("ui")
        try:
            b, t = await asyncio.wait_for(self.board.buttons.get(), REASON_TIMEOUT_S)
        except asyncio.TimeoutError:
            return -1, time.ticks_ms()  # recorded explicitly: the citizen gave no reason
        self.board.confirm(b)
        return b, t

    @staticmethod
    def _reasons(reason):
        return [] if reason == 0 else ["none"] if reason < 0 else [proto.REASONS[reason - 1]]

    def store(self, button, reason, case):
        """Flush one rating to flash as a compact record (outbox.py):
        level,reason,ts,tsync,up,case with the boot count and firmware in the segment header."""
        seq = self.counters.next_seq()
        if "\n" in case:
            case = ""  # cannot come from the gateway (it checks serials); never tear a record
        self.outbox.append(seq, b"%d,%d,%d,%d,%d,%s" % (
            button, reason, self.board.time(), self.tsync, self.uptime(), case), self.header)
        return seq

    def _record(self, seq, payload, header):
        """The rating message of one outbox record, unsigned, or None if it does not parse."""
        try:
            level, reason, ts, tsync, up, case = payload.decode().split(",", 5)
            boot, fw = header.decode().split(",", 1)
            return {"dev": self.dev, "seq": seq, "level": proto.LEVELS[int(level) - 1],
                    "reason": self._reasons(int(reason)), "case": case, "ts": int(ts),
                    "tsync": tsync == "1", "boot": int(boot), "up": int(up), "fw": fw}
        except (ValueError, IndexError):
            return None

    # -- the link --------------------------------------------------------------------
    async def link(self):
        backoff = 1000
        sv = self.supervisor
        while True:
            sv.alive("link")
            try:
                if not await self.board.net_up():
                    raise OSError("no network")
                present = await self.mqtt.connect()
            except OSError:
                # jittered exponential backoff: a hall's devices must not reconnect in step
                await asyncio.sleep_ms(backoff // 2 + random.getrandbits(16) % (backoff // 2 + 1))
                backoff = min(backoff * 2, 60000)
                continue
            backoff = 1000
            self.reconnects += 1
            if not present:
                self.sent = {}  # the broker forgot the session: resend everything unacked now
            try:
                await self.on_connect()
                self.board.set_online(True)
                await self.drain()
            except OSError:
                pass
            await self.mqtt.disconnect()
            self.board.set_online(False)
            self.board.event("link", up=False)

    async def on_connect(self):
        m = self.mqtt
        await m.subscribe([(self._t("ack"), 0), (self._t("session"), 1), (self._t("time"), 0),
                           (self._t("cmd"), 1)])
        await m.publish(self._t("status"), proto.encode(
            {"v": 1, "state": "online", "fw": FW_VERSION, "boot": self.counters.boot}), 1, True)
        await self.request_time()
        await self.send_health()
        self.board.event("link", up=True)

    async def drain(self):
        """Publish unacked ratings from the outbox until the link drops."""
        while self.mqtt.connected and await self.board.net_up():
            self.supervisor.alive("link")
            now = time.ticks_ms()
            due = [q for q, s in self.sent.items() if time.ticks_diff(now, s[0]) >= s[1]]
            room = SEND_WINDOW - len(self.sent) + len(due)
            if room > 0:
                skip = [q for q in self.sent if q not in due]
                for rec in self.outbox.pending(room, skip):
                    seq = rec[0]
                    msg = self._record(*rec)
                    if msg is None:  # passed its CRC yet does not parse: never send it
                        self.outbox.corrupt += 1
                        self.outbox.ack(seq)
                        continue
                    msg = self.signer.signed("rating", msg)  # signed when sent, not when stored
                    await self.mqtt.publish(self._t("rating"), proto.encode(msg), 1)
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
                self.board.event("synced")
        elif kind == "cmd":
            self.on_command(msg)

    def on_ack(self, msg):
        seq = msg.get("seq")
        status = msg.get("status")
        if not isinstance(seq, int) or status not in DROP_ON:
            return  # whatever else it says, the rating stays until the gateway has it
        if status == "held":
            self.held += 1
            self.board.event("held", seq=seq, reason=msg.get("reason"))
            if msg.get("reason") == "seq_taken":
                self.counters.skip_past(seq)
        self.sent.pop(seq, None)
        if self.outbox.ack(seq):
            self.board.event("acked", seq=seq, status=status)
        self.wake.set()

    def on_command(self, msg):
        cmd = msg.get("cmd")
        if cmd == "reboot" and str(msg.get("id")) != self.last_cmd:
            self.last_cmd = str(msg.get("id"))
            asyncio.create_task(self.reboot(self.last_cmd))
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
        oldest = oldest and self._record(*oldest[0])
        age = max(0, self.board.time() - oldest["ts"]) // 1000 if oldest else 0
        await self.mqtt.publish(self._t("health"), proto.encode({
            "v": 1, "dev": self.dev, "fw": FW_VERSION, "model": self.board.model,
            "up": self.uptime(), "boot": self.counters.boot, "reset": self.reset,
            "rssi": self.board.rssi(), "heap_free": free, "heap_block": block,
            "outbox": self.outbox.depth(), "oldest_s": age, "reconnects": self.reconnects - 1,
            "corrupt": self.outbox.corrupt, "held": self.held, "errors": self.mqtt.handler_errors, "tsync": self.tsync,
            "ts": self.board.time()}), 0)

    async def heartbeat(self):
        while True:
            self.supervisor.alive("heartbeat")
            await asyncio.sleep(HEARTBEAT_S)
            if self.mqtt.connected:
                try:
                    await self.send_health()
                except OSError:
                    pass
