"""The provincial platform as the forwarder sees it: province profiles and request signing.

A profile (gateway/profiles/NAME.json) is data: the request path, batch size, rate limit,
signing method, and how each field of the platform's record is made from the gateway's
neutral record. A field spec is one of

    "case_no"                                    a neutral field as it is
    {"const": "5"}                               a constant
    {"setting": "area_code"}                     a setting of this hall (gateway.json)
    {"from": "level", "codes": {...}}            a neutral value through a code table
    {"from": "reasons", "codes": {...}, "join": ","}   a list, coded and joined
    {"from": "rated_at", "time": "%Y%m%dT%H%M%S"}     a Unix time in the hall's time zone
    {"from": "part_staff", "codes": {...}, "absent": ""}   a value a rating may lack (an itemised part
                                                 the citizen did not rate), and what stands for it

A profile's optional "feedback" section, of the same form, says where and how a finished
work order (rectified, or found invalid) is reported.

Adding a province is a profile file; a platform whose envelope or replies differ gets a
small adapter beside the default one. The same profile validates records in the
platform stand-in, so both ends read one description.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

PROFILE_DIR = Path(__file__).parent / "profiles"


class ProfileError(ValueError):
    pass


class Profile:
    def __init__(self, data: dict):
        self.name = data["name"]
        self.path = data["path"]
        self.batch_size = int(data["batch_size"])
        self.rate_limit = float(data["rate_limit_per_s"])
        self.id_field = data["id_field"]
        self.fields = data["fields"]
        self.checks = data.get("checks", {})
        self.auth = data.get("auth", {"method": "none"})
        adapter = data.get("adapter", "default")
        if adapter not in ADAPTERS:
            raise ProfileError(f"profile {self.name}: unknown adapter {adapter!r}; known: {sorted(ADAPTERS)}")
        self.adapter = ADAPTERS[adapter]()
        if self.id_field not in self.fields:
            raise ProfileError(f"profile {self.name}: id_field {self.id_field} is not among its fields")
        # where the platform takes rectification feedback on a bad review: a section of
        # the same form (path, batch, rate, fields from the neutral feedback record)
        self.feedback = Profile({"name": f"{self.name}/feedback", "auth": self.auth, **data["feedback"]}) \
            if "feedback" in data else None

    @classmethod
    def load(cls, name_or_path: str) -> Profile:
        path = Path(name_or_path)
        if not path.suffix:
            path = PROFILE_DIR / f"{name_or_path}.json"
        try:
            return cls(json.loads(path.read_text()))
        except FileNotFoundError:
            known = ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.json")))
            raise ProfileError(f"no platform profile {name_or_path!r}; known: {known}") from None

    # -- records -----------------------------------------------------------------------
    def record(self, neutral: dict, settings: dict, tz: str) -> dict:
        """The platform's record for one rating."""
        return {name: self._value(spec, neutral, settings, tz, name) for name, spec in self.fields.items()}

    def _value(self, spec, rec: dict, settings: dict, tz: str, name: str):
        if isinstance(spec, str):
            return rec[spec] if rec[spec] is not None else ""
        if "const" in spec:
            return spec["const"]
        if "setting" in spec:
            if spec["setting"] not in settings:
                raise ProfileError(f"profile {self.name} needs the setting {spec['setting']!r} "
                                   f"(platform_settings in gateway.json) for {name}")
            return settings[spec["setting"]]
        value: Any = rec.get(spec["from"]) if "absent" in spec else rec[spec["from"]]
        if value is None and "absent" in spec:
            return spec["absent"]
        if "time" in spec:
            return datetime.fromtimestamp(value, ZoneInfo(tz)).strftime(spec["time"])
        if "codes" in spec:
            codes = spec["codes"]
            value = [codes[v] for v in value] if isinstance(value, list) else codes[value]
        if "join" in spec:
            value = spec["join"].join(str(v) for v in value)
        return value

    def problems(self, record: dict) -> list[str]:
        """What makes a record invalid for this platform (empty when it is valid)."""
        out = [f"missing {f}" for f in self.fields if f not in record]
        for f, rule in self.checks.items():
            v = record.get(f)
            if "pattern" in rule and not (isinstance(v, str) and re.fullmatch(rule["pattern"], v)):
                out.append(f"{f}={v!r} does not match {rule['pattern']}")
            if "one_of" in rule and v not in rule["one_of"]:
                out.append(f"{f}={v!r} is not one of {rule['one_of']}")
        return out



class DefaultAdapter:
    """The envelope {"records": [...]} and the reply {"results": [{"id", "status",
    "error"}]} with status accepted, duplicate or invalid. A platform that wraps or
    answers differently gets an adapter of its own, named by its profile's "adapter"."""

    def body(self, records: list[dict]) -> bytes:
        return json.dumps({"records": records}, ensure_ascii=False, separators=(",", ":")).encode()

    def results(self, reply) -> dict[str, dict]:
        """Rating ID -> {"status": ..., "error": ...}; raises ValueError if unreadable."""
        try:
            return {x["id"]: {"status": x["status"], "error": x.get("error")} for x in reply["results"]}
        except (KeyError, TypeError) as e:
            raise ValueError(f"unreadable reply: {e!r}") from None


ADAPTERS = {"default": DefaultAdapter}


class TokenBucket:
    def __init__(self, rate: float, burst: float):
        self.rate, self.burst = rate, burst
        self.tokens, self.at = burst, time.monotonic()

    def take(self, n: int) -> float:
        """Take n tokens; 0 if granted, else the seconds until they would be there."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if n <= self.tokens:
            self.tokens -= n
            return 0.0
        return (n - self.tokens) / self.rate

    def refund(self, n: int) -> None:
        """Give back tokens for a request the platform did no work for (5xx, no answer)."""
        self.tokens = min(self.burst, self.tokens + n)


# -- request signing ---------------------------------------------------------------------
def string_to_sign(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    return "\n".join([method.upper(), path, timestamp, nonce, hashlib.sha256(body).hexdigest()]).encode()


class HmacSha256Signer:
    """App key, timestamp (ms), nonce and HMAC-SHA256 over method, path, timestamp, nonce
    and the body's SHA-256. A province using SM2/SM3 gets a signer of the same shape."""

    name = "hmac-sha256"

    def __init__(self, app_key: str, app_secret: str):
        self.app_key, self.secret = app_key, app_secret.encode()

    def headers(self, method: str, path: str, body: bytes) -> dict[str, str]:
        ts, nonce = str(int(time.time() * 1000)), secrets.token_hex(16)
        sig = hmac.new(self.secret, string_to_sign(method, path, ts, nonce, body), hashlib.sha256).hexdigest()
        return {"X-App-Key": self.app_key, "X-Timestamp": ts, "X-Nonce": nonce, "X-Signature": sig}

    def check(self, method: str, path: str, body: bytes, headers) -> bool:
        want = hmac.new(self.secret, string_to_sign(method, path, headers.get("x-timestamp", ""),
                                                     headers.get("x-nonce", ""), body), hashlib.sha256).hexdigest()
        return hmac.compare_digest(want, headers.get("x-signature", ""))


class NoSigner:
    name = "none"

    def __init__(self, app_key: str = "", app_secret: str = ""):
        pass

    def headers(self, method, path, body):
        return {}

    def check(self, method, path, body, headers) -> bool:
        return True


SIGNERS = {s.name: s for s in (HmacSha256Signer, NoSigner)}


def signer(profile: Profile, app_key: str, app_secret: str):
    method = profile.auth.get("method", "none")
    if method not in SIGNERS:
        raise ProfileError(f"profile {profile.name}: unknown signing method {method!r}; known: {sorted(SIGNERS)}")
    return SIGNERS[method](app_key, app_secret)
