# A small asyncio MQTT 3.1.1 client for the evaluator.
#
# It assumes the network fails: connect() raises OSError on any trouble, a dead link is
# noticed by the reader or by the keepalive, and the caller reconnects with backoff.
# QoS 1 publishes are pipelined (at most MAX_INFLIGHT awaiting PUBACK, so memory stays
# bounded) and, as MQTT 3.1.1 requires of a persistent session, the ones without a
# PUBACK are sent again with the DUP flag after a reconnect. Whether a rating arrived is
# still decided by the gateway's application ack (evaluator.py resends on its own timer).
import asyncio
import struct
import time

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK = 1, 2, 3, 4, 8, 9
PINGREQ, PINGRESP, DISCONNECT = 12, 13, 14
MAX_INFLIGHT = 16
MAX_PACKET = 4096  # larger incoming packets are a protocol error here


def _str(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def _packet(kind_flags, body):
    n = len(body)
    head = bytearray([kind_flags])
    while True:
        d = n & 0x7F
        n >>= 7
        head.append(d | 0x80 if n else d)
        if not n:
            return bytes(head) + body


class MQTTError(OSError):
    pass


class Client:
    def __init__(self, client_id, host, port, user=None, password=None, keepalive=30,
                 will=None, clean=False, on_message=None, tls=None):
        self.client_id = client_id
        self.host = host
        self.port = port
        self.tls = tls  # an ssl.SSLContext that verifies the broker, or None for plain TCP
        self.user = user
        self.password = password
        self.keepalive = keepalive
        self.will = will  # (topic, payload bytes, qos, retain)
        self.clean = clean
        self.on_message = on_message  # f(topic str, payload bytes)
        self.handler_errors = 0  # messages whose handler raised, since boot (reported in health)
        self.connected = False
        self._r = self._w = None
        self._pid = 0
        self._inflight = {}
        self._tasks = []
        self._last_rx = 0
        self._lock = asyncio.Lock()

    async def connect(self, timeout_ms=5000):
        """Returns whether the broker kept the session (then unacked publishes are resent)."""
        try:
            # with TLS the broker's certificate must name the address we dialled
            self._r, self._w = await asyncio.wait_for_ms(asyncio.open_connection(
                self.host, self.port, ssl=self.tls, server_hostname=self.host if self.tls else None),
                timeout_ms)
            flags = 0x00 if not self.clean else 0x02
            payload = _str(self.client_id)
            if self.will:
                wt, wp, wq, wr = self.will
                flags |= 0x04 | (wq << 3) | (0x20 if wr else 0)
                payload += _str(wt) + _str(wp)
            if self.user is not None:
                flags |= 0x80
                payload += _str(self.user)
                if self.password is not None:
                    flags |= 0x40
                    payload += _str(self.password)
            body = _str("MQTT") + bytes([4, flags]) + struct.pack("!H", self.keepalive) + payload
            await self._send(_packet(CONNECT << 4, body))
            kind, data = await asyncio.wait_for_ms(self._read_packet(), timeout_ms)
            if kind >> 4 != CONNACK or len(data) != 2:
                raise MQTTError("no CONNACK")
            if data[1] != 0:
                raise MQTTError("connection refused, code %d" % data[1])
        except Exception as e:
            await self._close()
            if isinstance(e, OSError):
                raise
            raise MQTTError(repr(e))
        self.connected = True
        self._last_rx = time.ticks_ms()
        self._tasks = [asyncio.create_task(self._reader()), asyncio.create_task(self._pinger())]
        present = bool(data[0] & 1)
        if not present:
            self._inflight = {}
        try:
            for head, body in list(self._inflight.values()):
                await self._send(_packet(head | 0x08, body))  # DUP: the same packet again
        except OSError:
            pass  # the reader notices; the caller reconnects
        return present

    async def subscribe(self, topics):
        """topics: list of (topic, qos). Waits for nothing: SUBACK is read by the reader."""
        body = struct.pack("!H", self._next_pid())
        for t, q in topics:
            body += _str(t) + bytes([q])
        await self._send(_packet((SUBSCRIBE << 4) | 0x02, body))

    async def publish(self, topic, payload, qos=1, retain=False):
        while qos and len(self._inflight) >= MAX_INFLIGHT and self.connected:
            await asyncio.sleep_ms(5)
        if not self.connected:
            raise MQTTError("not connected")
        head = (PUBLISH << 4) | (qos << 1) | (1 if retain else 0)
        body = _str(topic)
        if qos:
            pid = self._next_pid()
            body += struct.pack("!H", pid) + payload
            self._inflight[pid] = (head, body)
        else:
            body += payload
        await self._send(_packet(head, body))

    async def disconnect(self):
        if self.connected:
            try:
                await self._send(_packet(DISCONNECT << 4, b""))
            except OSError:
                pass
        await self._close()

    # -- internals -----------------------------------------------------------------
    def _next_pid(self):
        self._pid = self._pid % 65535 + 1
        return self._pid

    async def _send(self, data):
        async with self._lock:
            self._w.write(data)
            await self._w.drain()

    async def _read_packet(self):
        head = await self._r.readexactly(1)
        n = 0
        shift = 0
        while True:
            b = (await self._r.readexactly(1))[0]
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            if shift > 21:
                raise MQTTError("bad length")
        if n > MAX_PACKET:
            raise MQTTError("packet too large")
        data = await self._r.readexactly(n) if n else b""
        self._last_rx = time.ticks_ms()
        return head[0], data

    async def _reader(self):
        try:
            while True:
                kind, data = await self._read_packet()
                t = kind >> 4
                if t == PUBLISH:
                    qos = (kind >> 1) & 3
                    tl = struct.unpack("!H", data[:2])[0]
                    topic = data[2:2 + tl].decode()
                    pos = 2 + tl
                    if qos:
                        pid = data[pos:pos + 2]
                        pos += 2
                    try:
                        if self.on_message:
                            self.on_message(topic, data[pos:])
                    except Exception:
                        # counted, and still acked: a message that breaks its handler would
                        # break it again on every redelivery; the link stays up
                        self.handler_errors += 1
                    if qos:
                        # acked after the handler ran: the handler stores before returning
                        await self._send(_packet(PUBACK << 4, pid))
                elif t == PUBACK:
                    self._inflight.pop(struct.unpack("!H", data)[0], None)
        except Exception:
            pass
        await self._close()

    async def _pinger(self):
        try:
            while self.connected:
                await asyncio.sleep(self.keepalive // 2)
                if time.ticks_diff(time.ticks_ms(), self._last_rx) > self.keepalive * 1500:
                    break  # nothing heard for 1.5 keepalives: the link is dead
                await self._send(_packet(PINGREQ << 4, b""))
        except Exception:
            pass
        await self._close()

    async def _close(self):
        self.connected = False
        if self._w is not None:
            try:
                self._w.close()
                await self._w.wait_closed()
            except Exception:
                pass
            self._w = None
        for t in self._tasks:
            if t is not asyncio.current_task():
                t.cancel()
        self._tasks = []
