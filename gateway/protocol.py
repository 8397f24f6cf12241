"""Protocol v1 on the gateway side, and the rating's version 2 (itemised parts): topics,
canonical bytes, signatures, validation.

protocol.md is the contract; this module and firmware/device/proto.py implement it and
are both tested against protocol/vectors/.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass

VERSION = 1
RATING_VERSIONS = (1, 2)  # a gateway takes both side by side (protocol.md section 11)
ROOT = "pingjia"

# code -> (Chinese name, score); the order is best to worst.
LEVELS = {
    "very_satisfied": ("非常满意", 10),
    "satisfied": ("满意", 8),
    "basically_satisfied": ("基本满意", 6),
    "dissatisfied": ("不满意", 3),
    "very_dissatisfied": ("非常不满意", 0),
}
BAD_LEVELS = {"dissatisfied", "very_dissatisfied"}
REASONS = {
    "attitude": "服务态度差",
    "slow": "办事效率低",
    "materials": "材料要求繁琐",
    "trips": "多次跑腿",
    "commitment": "未兑现承诺",
    "none": "未选择原因",
}
# Itemised parts of a version-2 rating (seed 003 art. 8, seed 000 art. 1), each rated on the five levels
PARTS = {
    "item": "服务事项", "staff": "工作人员", "channel": "服务渠道", "commitment": "承诺履行", "attitude": "服务态度",
    "materials": "申请材料", "efficiency": "办事效率", "trips": "跑趟次数", "mechanism": "服务机制",
    "integrity": "勤政廉洁",
}

# Field order of each signed kind: the canonical form lists them in this order. A rating
# of version 2 has `parts` after `reason` (RATING_V2).
FIELDS = {
    "rating": ("dev", "seq", "level", "reason", "case", "ts", "tsync", "boot", "up", "fw"),
    "ack": ("dev", "seq", "status", "reason"),
    "session": ("dev", "window", "staff_id", "staff_name", "case", "item_code", "item_name", "rated", "at"),
    "time": ("dev", "id", "now"),
    "cmd": ("dev", "id", "cmd", "at"),
    "update": ("dev", "id", "cmd", "hash", "version", "at"),  # the cmd "update" (section 12)
    "photo": ("dev", "staff_id", "hash", "at"),  # a tablet's staff photo (section 13)
}
RATING_V2 = ("dev", "seq", "level", "reason", "parts", "case", "ts", "tsync", "boot", "up", "fw")

ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
CASE_RE = re.compile(r"^[A-Za-z0-9._-]{0,50}$")
CODE_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")  # an item code (事项编码)
# Text shown on a device (names): no control characters or line separators, which the
# canonical form cannot carry and a spreadsheet or a log would misread.
TEXT_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")  # and lone surrogates: no UTF-8
TEXT_PATTERN = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]+$"  # the same rule for the API's models
SEQ_MAX = 2**31 - 1
TS_MAX = 2**45  # milliseconds: beyond the year 3000


class Rejected(Exception):
    """A message the gateway refuses; `reason` is one of protocol.md's rejection codes."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def topic(hall: str, dev: str, leaf: str) -> str:
    return f"{ROOT}/{hall}/{dev}/{leaf}"


def parse_topic(t: str) -> tuple[str, str, str] | None:
    """'pingjia/HALL/DEV/leaf[/more]' -> (hall, dev, leaf); None if not ours."""
    parts = t.split("/")
    if len(parts) < 4 or parts[0] != ROOT:
        return None
    return parts[1], parts[2], "/".join(parts[3:])


def _value(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, (list, tuple)):
        return ",".join(str(x) for x in v)
    if isinstance(v, dict):  # a rating's parts: code:level, in code order
        return ",".join(f"{k}:{v[k]}" for k in sorted(v))
    s = str(v)
    if "\n" in s or "\r" in s:
        raise Rejected("schema", "line break in a field")
    return s


def canonical(kind: str, msg: dict) -> bytes:
    v2 = kind == "rating" and msg.get("v") == 2 and type(msg.get("v")) is int
    lines = [f"{ROOT}/{2 if v2 else VERSION}", kind]
    lines += [f"{name}={_value(msg.get(name))}" for name in (RATING_V2 if v2 else FIELDS[kind])]
    return ("\n".join(lines) + "\n").encode("utf-8")


def sign(key: bytes, kind: str, msg: dict) -> str:
    return hmac.new(key, canonical(kind, msg), hashlib.sha256).hexdigest()


def signed(key: bytes, kind: str, msg: dict) -> dict:
    """A copy of msg with v and sig added: ready to publish."""
    out = {"v": VERSION, **msg}
    out["sig"] = sign(key, kind, out)
    return out


def encode(msg: dict) -> bytes:
    return json.dumps(msg, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def check(key: bytes, canonical_bytes: bytes, sig: str) -> bool:
    """Constant-time check of a signature over already computed canonical bytes."""
    return hmac.compare_digest(sig, hmac.new(key, canonical_bytes, hashlib.sha256).hexdigest())


def verify(key: bytes, kind: str, msg: dict) -> None:
    sig = msg.get("sig")
    if not isinstance(sig, str) or not check(key, canonical(kind, msg), sig):
        raise Rejected("bad_signature")


@dataclass(frozen=True)
class Rating:
    dev: str
    seq: int
    level: str
    reason: tuple[str, ...]
    case: str
    ts: int
    tsync: bool
    boot: int
    up: int
    fw: str
    sig: str
    parts: tuple[tuple[str, str], ...] = ()  # version 2: (part, level), in part order
    v: int = 1

    @property
    def id(self) -> str:
        return rating_id(self.dev, self.seq)


def rating_id(dev: str, seq: int) -> str:
    return f"{dev}:{seq}"


def is_text(s, max_len: int) -> bool:
    return isinstance(s, str) and 0 < len(s) <= max_len and not TEXT_FORBIDDEN.search(s)


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")  # Python's json takes NaN and Infinity; JSON does not


def load_json(payload: bytes) -> dict:
    try:
        msg = json.loads(payload.decode("utf-8"), parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:  # RecursionError: nesting thousands deep
        raise Rejected("not_json", str(e)[:80]) from None
    if not isinstance(msg, dict):
        raise Rejected("not_json", "payload is not a JSON object")
    return msg


def check_version(msg: dict) -> None:
    v = msg.get("v")
    if type(v) is not int or v != VERSION:  # JSON true equals 1 in Python; it is no version
        raise Rejected("unsupported_version", f"v={str(v)[:20]!r}")


def _need(msg: dict, name: str, kind, check=None):
    if name not in msg:
        raise Rejected("schema", f"missing field {name}")
    v = msg[name]
    # bool is an int subclass in Python; a JSON true is never a number here.
    if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
        raise Rejected("schema", f"field {name} has the wrong type")
    if check is not None and not check(v):
        raise Rejected("schema", f"field {name} out of range")
    return v


def parse_rating(payload: bytes) -> tuple[Rating, dict]:
    """Schema-check a rating payload. The signature is checked later, with the device's key."""
    msg = load_json(payload)
    v = msg.get("v")
    if type(v) is not int or v not in RATING_VERSIONS:
        raise Rejected("unsupported_version", f"v={str(v)[:20]!r}")
    dev = _need(msg, "dev", str, ID_RE.match)
    seq = _need(msg, "seq", int, lambda n: 1 <= n <= SEQ_MAX)
    level = _need(msg, "level", str, LEVELS.__contains__)
    reason = _need(msg, "reason", list)
    if not all(isinstance(r, str) and r in REASONS for r in reason) or len(reason) > 5:
        raise Rejected("schema", "unknown reason code")
    if len(set(reason)) != len(reason):
        raise Rejected("schema", "a reason code given twice")
    if level in BAD_LEVELS:
        if not reason or ("none" in reason and len(reason) > 1):
            raise Rejected("schema", "a bad review needs reason codes, or just 'none'")
    elif reason:
        raise Rejected("schema", "reason codes belong to bad reviews only")
    parts: tuple[tuple[str, str], ...] = ()
    if v == 2:
        given = _need(msg, "parts", dict, lambda d: len(d) <= len(PARTS))
        if not all(k in PARTS and isinstance(lv, str) and lv in LEVELS for k, lv in given.items()):
            raise Rejected("schema", "unknown part, or a part's level is not a level")
        parts = tuple(sorted(given.items()))  # a version-1 rating's `parts` is an unknown, unsigned field: ignored
    case = _need(msg, "case", str, CASE_RE.match)
    ts = _need(msg, "ts", int, lambda n: 0 <= n < TS_MAX)
    tsync = _need(msg, "tsync", bool)
    boot = _need(msg, "boot", int, lambda n: 0 <= n <= SEQ_MAX)
    up = _need(msg, "up", int, lambda n: 0 <= n < TS_MAX)
    fw = _need(msg, "fw", str, lambda s: is_text(s, 32))
    sig = _need(msg, "sig", str, lambda s: len(s) == 64)
    return Rating(dev, seq, level, tuple(reason), case, ts, tsync, boot, up, fw, sig, parts, v), msg


# Heartbeat fields (protocol.md section 7): name -> check. Unknown fields are dropped, a
# known one of the wrong type or size refuses the heartbeat: one device's data must never
# be able to break a view of all devices.
RESET_CAUSES = ("power_on", "watchdog", "panic", "soft", "deep_sleep", "brownout", "intended", "unknown")
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _rolled_back(v) -> bool:
    return (type(v) is dict and set(v) <= {"hash", "cmd", "why"} and (v.get("hash") is None or _hex64(v["hash"]))
            and is_text(v.get("cmd") or "-", 32) and is_text(v.get("why") or "-", 100))


def _hex64(v) -> bool:
    return type(v) is str and HEX64.match(v) is not None
MODELS = ("five-button", "tablet")
U32 = 2**32


def int_in(lo: int, hi: int):
    """A check that a value is a JSON integer in lo..hi-1 (never true, never a fraction)."""
    return lambda v: type(v) is int and lo <= v < hi


HEALTH_FIELDS = {
    "fw": lambda v: is_text(v, 32), "model": MODELS.__contains__, "ts": int_in(0, TS_MAX),
    "tsync": lambda v: type(v) is bool, "up": int_in(0, TS_MAX), "boot": int_in(0, SEQ_MAX + 1),
    "reset": RESET_CAUSES.__contains__, "rssi": int_in(-128, 1), "heap_free": int_in(0, U32),
    "heap_block": int_in(0, U32), "outbox": int_in(0, U32), "oldest_s": int_in(0, U32),
    "reconnects": int_in(0, U32), "corrupt": int_in(0, U32), "held": int_in(0, U32),
    "errors": int_in(0, U32),
    "fwh": lambda v: v == "" or _hex64(v), "trial": lambda v: type(v) is bool, "rolled_back": _rolled_back,
}


def parse_health(msg: dict, dev: str) -> dict:
    """The known, well-formed fields of a heartbeat; raises Rejected for a bad one."""
    check_version(msg)
    if msg.get("dev") != dev:
        raise Rejected("topic_mismatch", "heartbeat for another device")
    out = {}
    for name, ok in HEALTH_FIELDS.items():
        if name in msg:
            v = msg[name]
            if not ok(v):
                raise Rejected("schema", f"heartbeat field {name} is malformed")
            out[name] = v
    return out
