# Protocol v1 on the device, and the rating's version 2 (itemised parts): canonical bytes
# and HMAC-SHA256 signatures (protocol.md).
# MicroPython has hashlib.sha256 but no hmac module, so HMAC is built here (RFC 2104).
import hashlib
import binascii
import json

VERSION = 1
ROOT = "pingjia"

FIELDS = {
    "rating": ("dev", "seq", "level", "reason", "case", "ts", "tsync", "boot", "up", "fw"),
    "ack": ("dev", "seq", "status", "reason"),
    "session": ("dev", "window", "staff_id", "staff_name", "case", "item_code", "item_name", "rated", "at"),
    "time": ("dev", "id", "now"),
    "cmd": ("dev", "id", "cmd", "at"),
    "update": ("dev", "id", "cmd", "hash", "version", "at"),  # the cmd "update" (section 12)
    "photo": ("dev", "staff_id", "hash", "at"),  # a tablet's staff photo (section 13)
}

LEVELS = ("very_satisfied", "satisfied", "basically_satisfied", "dissatisfied", "very_dissatisfied")
BAD = ("dissatisfied", "very_dissatisfied")
REASONS = ("attitude", "slow", "materials", "trips", "commitment")


def _value(v):
    if v is None:
        return ""
    if v is True:
        return "1"
    if v is False:
        return "0"
    if isinstance(v, (list, tuple)):
        return ",".join(v)
    if isinstance(v, dict):  # a rating's parts: code:level, in code order
        return ",".join(k + ":" + v[k] for k in sorted(v))
    return str(v)


def version(kind, msg):
    # a rating with itemised parts is of version 2 (the tablet's): `parts` after `reason`
    return 2 if kind == "rating" and "parts" in msg else VERSION


def canonical(kind, msg):
    v = msg.get("v") or version(kind, msg)
    lines = [ROOT + "/" + str(v), kind]
    for name in FIELDS[kind]:
        lines.append(name + "=" + _value(msg.get(name)))
        if v == 2 and name == "reason":
            lines.append("parts=" + _value(msg.get("parts")))
    return ("\n".join(lines) + "\n").encode()


class Signer:
    # The key's inner and outer pads are computed once; each signature is two sha256 runs.
    def __init__(self, key):
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        key = key + bytes(64 - len(key))
        self._ipad = bytes(b ^ 0x36 for b in key)
        self._opad = bytes(b ^ 0x5C for b in key)

    def digest(self, data):
        h = hashlib.sha256(self._ipad)
        h.update(data)
        inner = h.digest()
        h = hashlib.sha256(self._opad)
        h.update(inner)
        return h.digest()

    def sign(self, kind, msg):
        return binascii.hexlify(self.digest(canonical(kind, msg))).decode()

    def signed(self, kind, msg):
        msg["v"] = version(kind, msg)
        msg["sig"] = self.sign(kind, msg)
        return msg

    def verify(self, kind, msg):
        sig = msg.get("sig")
        if not isinstance(sig, str) or len(sig) != 64:
            return False
        want = self.sign(kind, msg)
        diff = 0  # constant time: a forger learns nothing from timing
        for a, b in zip(sig, want):
            diff |= ord(a) ^ ord(b)
        return diff == 0


def encode(msg):
    return json.dumps(msg).encode()


def topic(hall, dev, leaf):
    return ROOT + "/" + hall + "/" + dev + "/" + leaf
