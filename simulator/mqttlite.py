"""A small asyncio MQTT 3.1.1 client for protocol-level virtual devices.

One event loop holds thousands of these (a selector, not a thread per client), which is
what a load generator needs: paho with one thread per client does not scale that far.
Only what a device uses: CONNECT with a will, SUBSCRIBE, PUBLISH QoS 0/1, PUBACK, PING.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 1, 2, 3, 4, 8, 9, 12, 13, 14


def _str(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def packet(kind_flags: int, body: bytes) -> bytes:
    n = len(body)
    head = bytearray([kind_flags])
    while True:
        d, n = n & 0x7F, n >> 7
        head.append(d | 0x80 if n else d)
        if not n:
            return bytes(head) + body


class MQTTLite(asyncio.Protocol):
    def __init__(self, client_id: str, user: str | None = None, password: str | None = None,
                 keepalive: int = 60, clean: bool = False, will: tuple | None = None, on_message=None,
                 on_puback=None):
        self.client_id, self.user, self.password = client_id, user, password
        self.keepalive, self.clean, self.will = keepalive, clean, will
        self.on_message = on_message  # f(topic: str, payload: bytes)
        self.on_puback = on_puback  # f(pid: int)
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.pid = 0
        self.connack: asyncio.Future | None = None
        self.closed = asyncio.Event()

    @classmethod
    async def connect(cls, host: str, port: int, timeout: float = 10.0, tls: ssl.SSLContext | None = None,
                      **kw) -> MQTTLite:
        loop = asyncio.get_running_loop()
        self = cls(**kw)
        self.connack = loop.create_future()
        await asyncio.wait_for(loop.create_connection(lambda: self, host, port, ssl=tls,
                                                      server_hostname=host if tls else None), timeout)
        rc = await asyncio.wait_for(self.connack, timeout)
        if rc != 0:
            self.transport.close()
            raise ConnectionRefusedError(f"{self.client_id}: CONNACK code {rc}")
        loop.create_task(self._ping())
        return self

    # -- asyncio.Protocol ------------------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        flags = 0 if not self.clean else 0x02
        payload = _str(self.client_id)
        if self.will:
            topic, msg, qos, retain = self.will
            flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
            payload += _str(topic) + _str(msg)
        if self.user is not None:
            flags |= 0x80
            payload += _str(self.user)
            if self.password is not None:
                flags |= 0x40
                payload += _str(self.password)
        body = _str("MQTT") + bytes([4, flags]) + struct.pack("!H", self.keepalive) + payload
        transport.write(packet(CONNECT << 4, body))

    def connection_lost(self, exc):
        self.closed.set()
        if self.connack and not self.connack.done():
            self.connack.set_exception(ConnectionError(f"{self.client_id}: connection lost"))

    def data_received(self, data):
        buf = self.buf
        buf += data
        while True:
            # fixed header: type byte, 1-4 length bytes
            n, shift, i = 0, 0, 1
            while True:
                if i >= len(buf):
                    return
                b = buf[i]
                n |= (b & 0x7F) << shift
                i += 1
                if not b & 0x80:
                    break
                shift += 7
            if len(buf) < i + n:
                return
            kind, body = buf[0], bytes(buf[i:i + n])
            del buf[:i + n]
            self._packet(kind, body)

    def _packet(self, kind: int, body: bytes) -> None:
        t = kind >> 4
        if t == PUBLISH:
            qos = (kind >> 1) & 3
            tl = struct.unpack_from("!H", body)[0]
            topic = body[2:2 + tl].decode()
            pos = 2 + tl
            if qos:
                pid = body[pos:pos + 2]
                pos += 2
            if self.on_message:
                self.on_message(topic, body[pos:])
            if qos:
                self.transport.write(packet(PUBACK << 4, pid))
        elif t == PUBACK:
            if self.on_puback:
                self.on_puback(struct.unpack("!H", body)[0])
        elif t == CONNACK:
            if not self.connack.done():
                self.connack.set_result(body[1])

    async def _ping(self):
        while not self.closed.is_set():
            await asyncio.sleep(self.keepalive / 2)
            if self.transport.is_closing():
                return
            self.transport.write(packet(PINGREQ << 4, b""))

    # -- API -------------------------------------------------------------------------
    def subscribe(self, topics: list[tuple[str, int]]) -> None:
        self.pid = self.pid % 65535 + 1
        body = struct.pack("!H", self.pid) + b"".join(_str(t) + bytes([q]) for t, q in topics)
        self.transport.write(packet((SUBSCRIBE << 4) | 0x02, body))

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        body = _str(topic)
        pid = 0
        if qos:
            self.pid = pid = self.pid % 65535 + 1
            body += struct.pack("!H", pid)
        self.transport.write(packet((PUBLISH << 4) | (qos << 1) | int(retain), body + payload))
        return pid

    def disconnect(self) -> None:
        if self.transport and not self.transport.is_closing():
            self.transport.write(packet(DISCONNECT << 4, b""))
            self.transport.close()

    def abort(self) -> None:
        """The plug pulled: no DISCONNECT, so the broker publishes the will."""
        if self.transport:
            self.transport.abort()
