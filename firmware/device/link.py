# The link to the gateway: MQTT over TLS kept up with jittered backoff, and the outbox
# drained through it. At most SEND_WINDOW ratings await their application ack at once;
# one not acked in time is published again, waiting twice as long each time.
import asyncio
import binascii
import random
import time

import proto
import records
from mqtt import Client

SEND_WINDOW = 8
RESEND_MS = 5000  # resend a rating not acked within this, doubling up to RESEND_MAX_MS
RESEND_MAX_MS = 60000


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


class Link:
    def __init__(self, ev, cfg, on_message):
        self.ev = ev
        self.board = ev.board
        self.sent = {}  # seq -> [ticks sent, resend interval]
        self.wake = asyncio.Event()  # a rating was stored or acked: look at the outbox now
        self.reconnects = 0
        self.acks = 0  # ratings the gateway acked this boot
        self.time_req = 0
        host, port = cfg["broker"]
        if not _is_ipv4(host):
            # a name would need a DNS lookup, which blocks the whole event loop on the ESP32
            raise ValueError("config broker must be an IPv4 address, not %r" % host)
        will = (ev.topic("status"), proto.encode({"v": 1, "state": "offline"}), 1, True)
        self.mqtt = Client(ev.dev, host, port, cfg["user"], cfg["password"], keepalive=30, will=will,
                           on_message=on_message, tls=_tls(cfg["ca"]))

    async def run(self):
        backoff = 1000
        sv = self.ev.supervisor
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
        ev, t = self.ev, self.ev.topic
        topics = [(t("ack"), 0), (t("session"), 1), (t("time"), 0), (t("cmd"), 1), (t("fw"), 0)]
        if ev.photo:  # a tablet: its staff photo (protocol.md section 13)
            topics += [(t("photo"), 1), (t("photo/chunk"), 0)]
        await self.mqtt.subscribe(topics)
        status = {"v": 1, "state": "online", "fw": ev.fw, "boot": ev.counters.boot}
        status.update(ev.updater.report())
        await self.mqtt.publish(t("status"), proto.encode(status), 1, True)
        await self.request_time()
        await ev.health.send()
        self.board.event("link", up=True)

    async def drain(self):
        """Publish unacked ratings from the outbox until the link drops."""
        ev = self.ev
        while self.mqtt.connected and await self.board.net_up():
            ev.supervisor.alive("link")
            now = time.ticks_ms()
            due = [q for q, s in self.sent.items() if time.ticks_diff(now, s[0]) >= s[1]]
            room = SEND_WINDOW - len(self.sent) + len(due)
            if room > 0:
                skip = [q for q in self.sent if q not in due]
                for seq, payload, head in ev.outbox.pending(room, skip):
                    msg = records.decode(ev.dev, seq, payload, head)
                    if msg is None:  # passed its CRC yet does not parse: never send it
                        ev.outbox.corrupt += 1
                        ev.outbox.ack(seq)
                        continue
                    msg = ev.signer.signed("rating", msg)  # signed when sent, not when stored
                    await self.mqtt.publish(ev.topic("rating"), proto.encode(msg), 1)
                    s = self.sent.get(seq)
                    interval = min(s[1] * 2, RESEND_MAX_MS) if s else RESEND_MS
                    self.sent[seq] = [time.ticks_ms(), interval]
            self.wake.clear()
            try:
                await asyncio.wait_for_ms(self.wake.wait(), 500)  # also notices a lost link
            except asyncio.TimeoutError:
                pass

    def acked(self, seq):
        """The gateway has rating seq: it leaves the outbox."""
        self.sent.pop(seq, None)
        self.wake.set()
        self.acks += 1
        return self.ev.outbox.ack(seq)

    async def request_time(self):
        self.time_req += 1
        ev = self.ev
        await self.mqtt.publish(ev.topic("time/req"), proto.encode(
            {"v": 1, "dev": ev.dev, "id": self.time_req, "ts": self.board.time(),
             "boot": ev.counters.boot, "up": ev.uptime()}), 0)
