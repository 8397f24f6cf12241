"""`pingjia gateway doctor`: a hall's box looked over, each finding with what to do about
it. It only looks: the database is opened read-only, nothing is migrated or repaired.

Each check gives ok, warn (works now, needs a person soon) or fail (something a hall
relies on is broken now)."""

from __future__ import annotations

import datetime
import shutil
import socket
import sqlite3
import ssl
import stat
import subprocess
import time
from dataclasses import asdict, dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx
from cryptography import x509

from .config import Config
from .data import devices, forwarding, open_readonly, ratings, schema

CERT_WARN_DAYS = 30
BACKUP_WARN_S = 2 * 86400
BACKLOG_WARN_S = 3600
CLOCK_WARN_S = 60


@dataclass
class Finding:
    check: str
    status: str  # ok, warn, fail
    message: str
    fix: str = ""


def _secret_files(home: Path) -> list[Path]:
    out = [home / n for n in ("gateway.json", "gateway.db", "gateway.db-wal", "gateway.db-shm", "local.token",
                              "tls/ca.key", "broker/broker.key", "broker/passwd", "broker/passwd.local")]
    out += sorted((home / "backups").glob("*.tar.gz"))
    return [p for p in out if p.exists()]


def check_files(cfg: Config) -> list[Finding]:
    home = cfg.home
    owner = home.stat().st_uid
    loose = [p for p in _secret_files(home) if p.stat().st_mode & 0o077]
    open_dirs = [d for d in (home, home / "tls", home / "broker", home / "backups")
                 if d.exists() and d.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH | (0 if d == home else 0o077))]
    others = [p for p in _secret_files(home) if p.stat().st_uid != owner and p.parent.name != "broker"]
    out = []
    if loose or open_dirs:
        names = ", ".join(str(p.relative_to(home)) or "." for p in [*loose, *open_dirs])
        out.append(Finding("files", "fail", f"others may read or write secrets in {home}: {names}",
                           f"chmod 600 the files and 700 the folders ({names})"))
    if others:
        out.append(Finding("files", "warn", f"{len(others)} file(s) in {home} belong to another user than the "
                                            f"home's: {', '.join(str(p.relative_to(home)) for p in others[:5])}",
                           f"chown them to the gateway's user (chown -R --reference={home} {home})"))
    return out or [Finding("files", "ok", f"secrets in {home} readable by the gateway's user alone")]


def check_gateway(cfg: Config) -> list[Finding]:
    host = "127.0.0.1" if cfg.api_host in ("0.0.0.0", "::", "") else cfg.api_host
    try:
        h = httpx.get(f"http://{host}:{cfg.api_port}/api/v1/health", timeout=3).json()
        if not isinstance(h, dict) or h.get("hall") != cfg.hall:
            raise ValueError("not this hall's gateway")
    except (httpx.HTTPError, ValueError):
        return [Finding("gateway", "fail", f"the gateway's API does not answer on {host}:{cfg.api_port}",
                        "start it: systemctl start pingjia-gateway (journalctl -u pingjia-gateway says why "
                        "it stopped)")]
    out = [Finding("gateway", "ok", f"running, API on {host}:{cfg.api_port}")]
    if not h.get("broker_connected"):
        out.append(Finding("gateway", "fail", "the gateway is not connected to its broker",
                           "start the broker: systemctl start pingjia-broker"))
    for name in h.get("alarms") or []:
        out.append(Finding("alarm", "fail", f"the gateway's alarm {name} is up",
                           "see GET /api/v1/gateway for its detail"))
    return out


def check_broker(cfg: Config) -> list[Finding]:
    if not cfg.broker_tls:
        return [Finding("broker", "warn", "the devices' listener is plain MQTT: anyone on the hall network reads "
                                          "the ratings", "set broker_tls true and provision the devices again")]
    where = f"{cfg.broker_host}:{cfg.broker_port}"
    try:
        ctx = ssl.create_default_context(cafile=str(cfg.tls_dir / "ca.crt"))
        with socket.create_connection((cfg.broker_host, cfg.broker_port), 5) as s, \
                ctx.wrap_socket(s, server_hostname=cfg.broker_host):
            pass
    except FileNotFoundError:
        return [Finding("broker", "fail", f"no hall CA at {cfg.tls_dir}/ca.crt", "restore it from a backup")]
    except ssl.SSLError as e:  # a CA file that is not one, or a broker that fails the check
        return [Finding("broker", "fail", f"the broker at {where} fails the devices' TLS check: {e.reason}",
                        "restart the broker: its certificate is made again for broker_host at start")]
    except OSError as e:
        return [Finding("broker", "fail", f"devices cannot reach the broker at {where}: {e.strerror or e}",
                        "start it (systemctl start pingjia-broker), and check broker_host is this box's address")]
    return [Finding("broker", "ok", f"TLS on {where}, checked against the hall CA as a device checks it")]


def check_certificates(cfg: Config, now: datetime.datetime) -> list[Finding]:
    out = []
    for name, path, fix in (("hall CA", cfg.tls_dir / "ca.crt", "a new CA means provisioning every device again: "
                             "plan it"),
                            ("broker certificate", cfg.broker_dir / "broker.crt",
                             "restart the broker: it makes a new certificate within 30 days of expiry")):
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except (OSError, ValueError):
            out.append(Finding("certificates", "fail", f"cannot read the {name} at {path}", fix))
            continue
        days = (cert.not_valid_after_utc - now).total_seconds() / 86400
        until = cert.not_valid_after_utc.date().isoformat()
        if days < 0:
            out.append(Finding("certificates", "fail", f"the {name} expired on {until}", fix))
        elif days < CERT_WARN_DAYS:
            out.append(Finding("certificates", "warn", f"the {name} expires on {until}, in {days:.0f} days", fix))
        else:
            out.append(Finding("certificates", "ok", f"the {name} is valid until {until}"))
    return out


def check_disk(cfg: Config) -> list[Finding]:
    free = shutil.disk_usage(cfg.home).free / 1e6
    fix = f"free space on the disk of {cfg.home} (old files in {cfg.home}/backups once copied off the box)"
    if free < cfg.disk_free_min_mb:
        return [Finding("disk", "fail", f"{free:.0f} MB free, under disk_free_min_mb ({cfg.disk_free_min_mb})", fix)]
    if free < 5 * cfg.disk_free_min_mb:
        return [Finding("disk", "warn", f"{free:.0f} MB free", fix)]
    return [Finding("disk", "ok", f"{free:.0f} MB free")]


def check_platform(cfg: Config, now: datetime.datetime) -> list[Finding]:
    if not cfg.platform_url:
        return [Finding("platform", "warn", "forwarding is off: no platform_url", "set platform_url in gateway.json")]
    try:
        r = httpx.get(cfg.platform_url, timeout=cfg.platform_timeout_s, verify=cfg.platform_verify_tls)
    except httpx.HTTPError as e:
        return [Finding("platform", "fail", f"the platform at {cfg.platform_url} cannot be reached: "
                                            f"{type(e).__name__}", "check the box's route to it, and platform_url")]
    if r.status_code >= 500:
        return [Finding("platform", "warn", f"the platform at {cfg.platform_url} answers HTTP {r.status_code}",
                        "it may be down for maintenance: GET /api/v1/forwarder says how forwarding goes")]
    out = [Finding("platform", "ok", f"{cfg.platform_url} answers (HTTP {r.status_code})")]
    try:
        skew = (now - parsedate_to_datetime(r.headers["date"])).total_seconds()
    except (KeyError, TypeError, ValueError):
        return out
    if abs(skew) > CLOCK_WARN_S:
        out.append(Finding("clock", "warn", f"this box's clock is {skew:+.0f} s from the platform's",
                           "check the box's time synchronisation (timedatectl)"))
    return out


def check_clock(db, now: float) -> list[Finding]:
    out = []
    newest = ratings.newest_received_at(db)
    if newest is not None and now < newest - CLOCK_WARN_S:
        out.append(Finding("clock", "warn", f"the clock is {newest - now:.0f} s behind the newest stored rating's "
                                            f"arrival (it was ahead then, or is behind now)",
                           "check the box's time (timedatectl, NTP)"))
    try:
        synced = subprocess.run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"], capture_output=True,
                                text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        synced = ""
    if synced == "no":
        out.append(Finding("clock", "warn", "the box's clock is not synchronised by NTP",
                           "timedatectl set-ntp true, with an NTP server the hall network reaches"))
    return out or [Finding("clock", "ok", "no sign of a wrong clock" + (" (NTP synchronised)" if synced else ""))]


def check_store(cfg: Config, db, now: float) -> list[Finding]:
    out = []
    level = db.conn.execute("PRAGMA user_version").fetchone()[0]
    if level > schema.SCHEMA_VERSION:
        out.append(Finding("database", "fail", f"schema version {level} is newer than this release's "
                                               f"({schema.SCHEMA_VERSION})", "run the release that made it"))
    stale = devices.stale(db, now - 3 * cfg.heartbeat_s)
    if stale:
        out.append(Finding("devices", "warn", f"{len(stale)} device(s) sent no heartbeat for "
                                              f"{3 * cfg.heartbeat_s} s: {', '.join(stale[:10])}"
                                              f"{' ...' if len(stale) > 10 else ''}",
                           "look at them: power, Wi-Fi, `pingjia device info` over USB"))
    else:
        out.append(Finding("devices", "ok", "every device in service sent a heartbeat lately"))
    b = forwarding.backlog(db)
    if b["oldest"] and now - b["oldest"] > BACKLOG_WARN_S:
        out.append(Finding("forwarding", "warn", f"{b['n']} rating(s) wait to be forwarded, the oldest for "
                                                 f"{(now - b['oldest']) / 3600:.1f} h",
                           "GET /api/v1/forwarder says why"))
    if b["states"].get("dead"):
        out.append(Finding("forwarding", "warn", f"{b['states']['dead']} rating(s) the platform refused for good",
                           "GET /api/v1/forwarder/dead, then POST /api/v1/forwarder/requeue once corrected"))
    return out


def check_backups(cfg: Config, now: float) -> list[Finding]:
    kept = sorted((cfg.home / "backups").glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
    fix = "systemctl enable --now pingjia-backup.timer, or `pingjia gateway backup`"
    if not kept:
        return [Finding("backups", "warn", f"no backup in {cfg.home}/backups", fix)]
    age = now - kept[-1].stat().st_mtime
    if age > BACKUP_WARN_S:
        return [Finding("backups", "warn", f"the newest backup is {age / 86400:.1f} days old", fix)]
    return [Finding("backups", "ok", f"{len(kept)} kept, the newest {age / 3600:.1f} h old: copy them off the box")]


def examine(cfg: Config) -> list[Finding]:
    now = time.time()
    utc = datetime.datetime.now(datetime.UTC)
    out = check_files(cfg) + check_gateway(cfg) + check_broker(cfg) + check_certificates(cfg, utc)
    out += check_disk(cfg) + check_platform(cfg, utc)
    try:
        db = open_readonly(cfg.db_path)
        try:
            out += check_clock(db, now) + check_store(cfg, db, now)
        finally:
            db.conn.close()
    except sqlite3.Error as e:
        out.append(Finding("database", "fail", f"cannot read {cfg.db_path}: {e}",
                           "run the doctor as the gateway's user or root; restore a backup if it is gone"))
    return out + check_backups(cfg, now)


def report(findings: list[Finding]) -> dict:
    return {"ok": not any(f.status == "fail" for f in findings), "findings": [asdict(f) for f in findings]}
