"""A hall's home folder and its settings (home/gateway.json).

    home/gateway.json   settings, written once by `pingjia gateway init`
    home/gateway.db     ratings, work orders, devices, accounts, sessions, cases, audit (SQLite, WAL)
    home/local.token    the token of this box's `pingjia gateway` commands, made at each start
    home/holidays.json  the hall's holidays and 调休 working days, added to the shipped calendar
    home/broker/        the generated Mosquitto configuration, its data, certificate and log
    home/tls/           the hall's certificate authority (tls.py)
    home/gateway.lock   held by the running gateway: one gateway per home, no restore under it
    home/backups/       the nightly backups (backup.py)
"""

from __future__ import annotations

import dataclasses
import fcntl
import ipaddress
import json
import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ConfigError, PingjiaError
from .protocol import ID_RE


@dataclass
class Config:
    home: Path
    hall: str = "hall1"
    # The devices' listener: the broker's address on the hall network (an IP address,
    # which its certificate names), MQTT over TLS unless broker_tls is false.
    broker_host: str = "127.0.0.1"
    broker_port: int = 8883
    broker_tls: bool = True
    # The gateway's own listener: plain MQTT on loopback, for processes on this host.
    local_port: int = 1883
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    gateway_user: str = "gateway"
    gateway_password: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    # People log in with accounts, the business system has an API token of its own (auth.py).
    # api_token: the single admin token of the release before accounts, still honoured for
    # one release so that a hall can upgrade, with a warning; new halls have none.
    api_token: str = ""
    session_hours: float = 12.0  # a login token's life
    work_order_rules: str = "huanggang"  # gateway/rulesets/NAME.json, or a path to one
    alert_webhook_url: str = ""  # the hall's own system, told of each alert by a signed POST
    alert_webhook_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    platform_url: str = "http://127.0.0.1:8090"  # empty: forwarding off
    platform_profile: str = "national"  # gateway/profiles/NAME.json, or a path to one
    platform_app_key: str = "pingjia"
    platform_app_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    platform_settings: dict = field(default_factory=dict)  # the hall's codes: area_code, dept_code ...
    platform_verify_tls: bool = True
    platform_timeout_s: float = 10.0  # no answer by then counts as a failed request
    timezone: str = "Asia/Shanghai"  # the hall's: dates in filters and times in answers
    heartbeat_s: int = 60  # a device is stale after 3 missed heartbeats
    # Unacked QoS 1 messages the broker sends a client at once; for the gateway it is also
    # the most a group commit can hold, since nothing is PUBACKed before its commit.
    # Mosquitto's default is 20; 100 measured 0.54 of the raw baseline against 0.39.
    inflight_window: int = 100
    group_wait_ms: float = 2.0  # how long a group waits for company before it commits
    disk_free_min_mb: int = 200  # less free space than this on the home's disk raises an alarm

    @property
    def db_path(self) -> Path:
        return self.home / "gateway.db"

    @property
    def broker_dir(self) -> Path:
        return self.home / "broker"

    @property
    def tls_dir(self) -> Path:
        return self.home / "tls"

    @property
    def utc_offset_s(self) -> int:
        """The hall's offset from UTC now (the zones of China keep no summer time)."""
        offset = datetime.now(ZoneInfo(self.timezone)).utcoffset()
        return int(offset.total_seconds()) if offset else 0

    @property
    def api_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"

    def save(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        data = {k: v for k, v in asdict(self).items() if k != "home"}
        path = self.home / "gateway.json"
        tmp = path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        tmp.touch(mode=0o600)  # before a byte is written: it holds the broker password and secrets
        tmp.chmod(0o600)
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(path)

    @classmethod
    def load(cls, home: Path | str) -> Config:
        """The hall's settings, checked: a wrong one is named, with what it should be."""
        home = Path(home)
        path = home / "gateway.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"no gateway settings at {path}: run `pingjia gateway init` first") from None
        except ValueError as e:
            raise ConfigError(f"{path} is not JSON: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must hold a JSON object of settings")
        fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "home"}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ConfigError(f"unknown settings in {path}: {', '.join(unknown)}")
        for name, value in data.items():
            want = _TYPES[str(fields[name].type)]
            if not isinstance(value, want) or (want is not bool and isinstance(value, bool)):
                raise ConfigError(f"setting {name} in {path} must be {fields[name].type}, not {value!r}")
        cfg = cls(home=home, **data)
        cfg.check(path)
        if set(fields) - set(data):
            cfg.save()  # settings an older release did not have (a new token) must stay as made now
        return cfg

    def check(self, where: Path | str = "the settings") -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"timezone {self.timezone!r} in {where} is not a known time zone "
                              f"(e.g. Asia/Shanghai)") from None
        if not ID_RE.match(self.hall):
            raise ConfigError(f"hall {self.hall!r} in {where}: use 1-32 letters, digits, '-' or '_'")
        try:
            ipaddress.ip_address(self.broker_host)
        except ValueError:
            raise ConfigError(f"broker_host {self.broker_host!r} in {where} must be an IP address") from None
        for name in ("broker_port", "local_port", "api_port"):
            if not 0 < getattr(self, name) < 65536:
                raise ConfigError(f"{name} in {where} must be a port number")
        if self.heartbeat_s <= 0 or self.inflight_window <= 0 or self.platform_timeout_s <= 0 \
                or not 0 < self.session_hours <= 24 * 30:
            raise ConfigError(f"heartbeat_s, inflight_window, platform_timeout_s and session_hours (at most 720) "
                              f"in {where} must be positive")
        if self.disk_free_min_mb < 0:
            raise ConfigError(f"disk_free_min_mb in {where} must be 0 (no alarm) or more")
        from .deadlines import RuleSet  # the rule set is a setting: a wrong name is named now

        RuleSet.load(self.work_order_rules)
        if self.alert_webhook_url and not self.alert_webhook_url.startswith(("http://", "https://")):
            raise ConfigError(f"alert_webhook_url in {where} must be an http:// or https:// URL")


def hold(home: Path):
    """The home's lock (home/gateway.lock), held for as long as the returned file stays
    open, or released by the kernel when its process dies, however it dies."""
    f = open(Path(home) / "gateway.lock", "a")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        raise PingjiaError(f"a gateway is running on {home} (it holds {home}/gateway.lock): stop it first "
                           f"(systemctl stop pingjia-gateway)") from None
    return f


_TYPES: dict[str, type | tuple[type, ...]] = {"str": str, "int": int, "bool": bool, "float": (int, float),
                                              "dict": dict}
