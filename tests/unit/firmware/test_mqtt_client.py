"""The device's MQTT client, byte for byte (MQTT 3.1.1), under MicroPython, against a
scripted broker on a local socket: CONNECT with will and login, SUBSCRIBE, PUBLISH at
QoS 0 and 1, PUBACK after the handler, and on a kept session the unacked publish sent
again with DUP."""

import socket
import struct
import threading

from tests.conftest import run_device_code


def _packets(conn: socket.socket):
    """Yield each whole packet the client sends, until it closes the connection."""
    buf = b""
    while True:
        while True:  # a whole packet in buf?
            if len(buf) >= 2:
                n, shift, i = 0, 0, 1
                while i < len(buf):
                    n |= (buf[i] & 0x7F) << shift
                    shift += 7
                    i += 1
                    if not buf[i - 1] & 0x80:
                        break
                else:
                    i = None
                if i is not None and len(buf) >= i + n:
                    yield buf[:i + n]
                    buf = buf[i + n:]
                    continue
            break
        data = conn.recv(4096)
        if not data:
            return
        buf += data


class Broker(threading.Thread):
    """Two connections: the first PUBACKs nothing and hangs up after the first QoS 1
    publish; the second says the session was kept, answers, and publishes to the client
    at QoS 1 once the client's QoS 0 publish is in."""

    def __init__(self):
        super().__init__(daemon=True)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.seen: list[list[bytes]] = []

    def run(self):
        for n in range(2):
            conn, _ = self.server.accept()
            got = []
            self.seen.append(got)
            for p in _packets(conn):
                got.append(p)
                kind = p[0] >> 4
                if kind == 1:
                    conn.sendall(b"\x20\x02" + bytes([n]) + b"\x00")  # CONNACK; session kept the 2nd time
                elif kind == 8:
                    conn.sendall(b"\x90\x04" + p[2:4] + b"\x00\x01")  # SUBACK
                elif kind == 3 and p[0] & 0x06 and n == 0:
                    conn.close()  # no PUBACK: the publish stays in flight
                    break
                elif kind == 3 and p[0] & 0x06:
                    conn.sendall(b"\x40\x02" + p[-4:-2])  # PUBACK (pid sits before the 2-byte payload)
                elif kind == 3:
                    conn.sendall(b"\x32\x0a\x00\x04in/1\x12\x34ok")  # a QoS 1 publish to the client
                elif kind == 14:
                    break
            conn.close()


SCRIPT = """
import asyncio, json
from mqtt import Client
got = []
async def main():
    c = Client("pj-0001", "127.0.0.1", %d, "pj-0001", "pw", keepalive=30, will=("t/w", b"bye", 1, True),
               on_message=lambda t, p: got.append([t, p.decode()]))
    first = await c.connect()
    await c.subscribe([("a/b", 0), ("c", 1)])
    await c.publish("x/y", b"hi", 1)
    await asyncio.sleep_ms(300)  # the broker hangs up
    second = await c.connect()  # the unacked publish goes again, with DUP
    await c.publish("z", b"q0", 0, True)
    await asyncio.sleep_ms(300)
    await c.disconnect()
    print(json.dumps({"present": [first, second], "got": got}))
asyncio.run(main())
"""


def test_the_device_mqtt_client_speaks_mqtt_311_byte_for_byte(tmp_path):
    b = Broker()
    b.start()
    out = run_device_code(SCRIPT % b.port, tmp_path)[0]
    b.join(5)
    assert out == {"present": [False, True], "got": [["in/1", "ok"]]}
    s = lambda t: struct.pack("!H", len(t)) + t  # noqa: E731  (a length-prefixed string)
    pkt = lambda head, body: bytes([head, len(body)]) + body  # noqa: E731  (short packets: one length byte)
    connect = pkt(0x10, s(b"MQTT") + b"\x04" + bytes([0x80 | 0x40 | 0x20 | 0x08 | 0x04]) + b"\x00\x1e"
                  + s(b"pj-0001") + s(b"t/w") + s(b"bye") + s(b"pj-0001") + s(b"pw"))
    first, second = b.seen
    assert first == [connect, pkt(0x82, b"\x00\x01" + s(b"a/b") + b"\x00" + s(b"c") + b"\x01"),
                     pkt(0x32, s(b"x/y") + b"\x00\x02hi")]
    assert second == [connect, pkt(0x3a, s(b"x/y") + b"\x00\x02hi"),  # the same publish, DUP set
                      pkt(0x31, s(b"z") + b"q0"),
                      b"\x40\x02\x12\x34",  # PUBACK of the broker's QoS 1 publish, after the handler ran
                      b"\xe0\x00"]


def test_a_message_that_breaks_its_handler_is_counted_and_the_link_stays(tmp_path):
    """A handler that raises costs neither the connection nor a redelivery loop: the
    message is acked, counted (the device reports it in health as `errors`), and the
    next message is handled."""
    server = socket.create_server(("127.0.0.1", 0))
    seen = []

    def broker():
        conn, _ = server.accept()
        for p in _packets(conn):
            seen.append(p)
            if p[0] >> 4 == 1:
                conn.sendall(b"\x20\x02\x00\x00"  # CONNACK, then two QoS 1 publishes
                             + b"\x32\x0b\x00\x03bad\x00\x07boom" + b"\x32\x0a\x00\x02ok\x00\x08fine")
            elif p[0] >> 4 == 14:
                break
        conn.close()
    t = threading.Thread(target=broker, daemon=True)
    t.start()
    out = run_device_code("""
import asyncio, json
from mqtt import Client
got = []
def handle(topic, payload):
    if topic == "bad":
        raise ValueError("a bug")
    got.append(topic)
async def main():
    c = Client("pj-0001", "127.0.0.1", %d, on_message=handle)
    await c.connect()
    await asyncio.sleep_ms(300)
    up = c.connected
    await c.disconnect()
    print(json.dumps([got, c.handler_errors, up]))
asyncio.run(main())
""" % server.getsockname()[1], tmp_path)[0]
    t.join(5)
    assert out == [["ok"], 1, True]
    assert b"\x40\x02\x00\x07" in seen and b"\x40\x02\x00\x08" in seen  # both acked
