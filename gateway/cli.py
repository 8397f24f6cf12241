"""The `pingjia` command, and its `gateway ...` commands.

Each part of Pingjia registers its own commands through the entry point group
"pingjia.commands" (pyproject.toml): the gateway here, the firmware tools and the
simulator in their own packages, so the gateway names neither and a hall's install
needs neither. Library code raises errors; only main() turns them into an exit.

`pingjia gateway device ...` and the session and case commands are thin clients of the
running gateway's HTTP API, so the CLI and the API can never disagree.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import signal
import sys
from importlib.metadata import entry_points
from logging.handlers import RotatingFileHandler
from pathlib import Path

from .errors import ConfigError, PingjiaError

LOG_FILE_BYTES = 5_000_000  # a log file rolls over at this size, keeping LOG_FILE_KEPT old ones
LOG_FILE_KEPT = 3


def _print(data) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


class ApiClient:
    """The running gateway's API, with the token it made at start for this box's commands
    (home/local.token, readable by the gateway's user only; accepted from loopback only)."""

    def __init__(self, home: str):
        import httpx

        from .config import Config

        self.cfg = Config.load(home)
        self.httpx = httpx
        try:
            token = (self.cfg.home / "local.token").read_text().strip()
        except FileNotFoundError:
            raise PingjiaError(f"the gateway is not running at {self.cfg.home} (it never started there): "
                               f"start it with `pingjia gateway run --home {self.cfg.home}`") from None
        except PermissionError:
            raise PingjiaError(f"{self.cfg.home}/local.token is the gateway's: run this as its user") from None
        host = "127.0.0.1" if self.cfg.api_host in ("0.0.0.0", "::", "") else self.cfg.api_host
        self._open(f"http://{host}:{self.cfg.api_port}", token)
        self.start_hint = f"start it with `pingjia gateway run --home {self.cfg.home}`"

    @classmethod
    def remote(cls, url: str, token: str) -> ApiClient:
        """Another machine's gateway (a technician's laptop on the hall network)."""
        import httpx

        self = cls.__new__(cls)
        self.httpx = httpx
        host = httpx.URL(url).host
        if httpx.URL(url).scheme == "http" and host not in ("127.0.0.1", "localhost", "::1"):
            print(f"warning: {url} is plain HTTP: the token and what the gateway answers cross the network "
                  f"unencrypted", file=sys.stderr)
        self._open(url.rstrip("/"), token)
        self.start_hint = "is it running, and is this machine on the hall's network?"
        return self

    def _open(self, url: str, token: str) -> None:
        self.url = url
        self.http = self.httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {token}"})

    def call(self, method: str, path: str, **kw):
        try:
            r = self.http.request(method, path, **kw)
        except (self.httpx.ConnectError, self.httpx.ConnectTimeout):
            raise PingjiaError(f"the gateway at {self.url} does not answer: {self.start_hint}") from None
        if r.status_code == 401:
            raise PingjiaError(f"the gateway at {self.url} refused the token: get a technician's API token "
                               f"(pingjia gateway user token NAME) into PINGJIA_TOKEN")
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail")
            except ValueError:
                detail = r.text
            raise PingjiaError(f"error {r.status_code}: {json.dumps(detail, ensure_ascii=False)}")
        return r.json()


# -- running a hall's gateway ----------------------------------------------------------
def _init(args) -> None:
    from .broker import Broker
    from .config import Config
    from .data import devices, open_db

    path = Path(args.home)
    if (path / "gateway.json").exists():
        print(f"{path}/gateway.json exists; leaving it as it is", file=sys.stderr)
        cfg = Config.load(path)
    else:
        try:
            ipaddress.ip_address(args.broker_host)
        except ValueError:
            raise ConfigError(f"--broker-host must be an IP address (devices do no DNS; the broker's "
                              f"certificate names it): {args.broker_host!r}") from None
        cfg = Config(home=path, hall=args.hall, broker_host=args.broker_host, broker_port=args.broker_port,
                     local_port=args.local_port, api_port=args.api_port, platform_url=args.platform_url)
        cfg.save()
    Broker(cfg).write_config(devices.password_hashes(open_db(cfg.db_path)))
    print(f"hall {cfg.hall} at {path}: broker config {cfg.broker_dir}/mosquitto.conf"
          f"{', hall CA ' + str(cfg.tls_dir / 'ca.crt') if cfg.broker_tls else ''}, API {cfg.api_url}")


def _run(args) -> None:
    from .config import Config
    from .service import Gateway

    Gateway(Config.load(args.home)).run()


def _broker(args) -> int:
    from .broker import Broker
    from .config import Config
    from .data import devices, open_db

    cfg = Config.load(args.home)
    broker = Broker(cfg)
    broker.write_config(devices.password_hashes(open_db(cfg.db_path)))
    def interrupted(signum, frame):
        raise KeyboardInterrupt
    # SIGTERM (a service manager) and SIGINT stop mosquitto with it; SIGINT explicitly too, for
    # a shell that started this in the background with SIGINT ignored
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, interrupted)
    proc = broker.start()
    print(f"mosquitto listening on {cfg.broker_host}:{cfg.broker_port} for devices"
          f"{' (TLS)' if cfg.broker_tls else ''} and 127.0.0.1:{cfg.local_port} for the gateway (pid {proc.pid})",
          file=sys.stderr)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        broker.stop()
        return 0


def _install_service(args) -> None:
    from . import systemd
    from .config import Config

    cfg = Config.load(args.home)
    if args.print:
        for name, text in systemd.units(cfg, args.user).items():
            print(f"# {name}\n{text}")
        return
    paths = systemd.install(cfg, args.user, Path(args.unit_dir))
    names = " ".join(p.name for p in paths if p.suffix != ".service" or "backup" not in p.name)
    print(f"{', '.join(str(p) for p in paths)} written; {cfg.home} now belongs to user {args.user}. Start them with\n"
          f"  systemctl daemon-reload && systemctl enable --now {names}\n"
          f"and check the hall with `pingjia gateway doctor --home {cfg.home}`", file=sys.stderr)


def _doctor(args) -> int:
    from . import doctor
    from .config import Config

    out = doctor.report(doctor.examine(Config.load(args.home)))
    if args.json:
        _print(out)
    else:
        for f in out["findings"]:
            print(f"{f['status'].upper():<5} {f['check']:<13} {f['message']}" + (f"\n{'':19}fix: {f['fix']}"
                                                                             if f["status"] != "ok" else ""))
    return 0 if out["ok"] else 1


def _backup(args) -> None:
    import time

    from .backup import backup
    from .config import Config

    started = time.monotonic()
    out = backup(Config.load(args.home), Path(args.out) if args.out else None, args.keep)
    print(f"backup of hall {out['hall']} ({out['ratings']} ratings) written to {out['path']}: "
          f"{out['bytes'] / 1e6:.1f} MB in {time.monotonic() - started:.1f} s. It holds every device's key "
          f"and the hall CA's: keep it as you keep those", file=sys.stderr)
    _print({k: v for k, v in out.items() if k != "files"})


def _restore(args) -> None:
    from .backup import restore

    out = restore(Path(args.archive), Path(args.home), args.force)
    print(f"hall {out['hall']} restored into {out['home']} from the backup of {out['created_at']} "
          f"({out['ratings']} ratings){'; what was there is in ' + out['replaced'] if out['replaced'] else ''}. "
          f"Ratings stored after that backup are not in it. Start the broker, then the gateway "
          f"(the broker's passwords are written from the restored database as it starts).", file=sys.stderr)
    _print(out)


# -- the registry, sessions and cases, through the running gateway's API ----------------
def _device_add(args) -> None:
    creds = ApiClient(args.home).call("POST", "/api/v1/devices",
                                      json={"dev": args.dev, "window": args.window, "model": args.model})
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.touch(mode=0o600)
        out.chmod(0o600)
        out.write_text(json.dumps(creds, ensure_ascii=False))
        print(f"device config for {args.dev} written to {out}", file=sys.stderr)
    else:
        _print(creds)
    print("the key and password are shown only now: put them on the device", file=sys.stderr)


def _device_list(args) -> None:
    for d in ApiClient(args.home).call("GET", "/api/v1/devices"):
        h = d["health"] or {}
        print(f"{d['dev']:<12} {d['window']:<8} {d['state']:<11} "
              f"{'online' if d['online'] else 'offline':<8} {'stale' if d['stale'] else 'fresh':<6} "
              f"fw={d['fw'] or '-'} outbox={h.get('outbox', '-')}")


def _password(args) -> str:
    """A password from standard input (--password-stdin: scripts), or asked twice."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    import getpass

    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != first:
        raise PingjiaError("the two passwords differ")
    return first


def _user_add(args) -> None:
    body = {"name": args.name, "role": args.role, "windows": args.window or []}
    if args.role != "business":
        body["password"] = _password(args)
    _print(ApiClient(args.home).call("POST", "/api/v1/users", json=body))


def _user_list(args) -> None:
    for u in ApiClient(args.home).call("GET", "/api/v1/users"):
        print(f"{u['name']:<16} {u['role']:<11} {'disabled' if u['disabled'] else 'enabled':<9} "
              f"{','.join(u['windows']) or '-'}")


def _user_password(args) -> None:
    _print(ApiClient(args.home).call("POST", f"/api/v1/users/{args.name}/password",
                                     json={"password": _password(args)}))


def _user_token(args) -> None:
    out = ApiClient(args.home).call("POST", f"/api/v1/users/{args.name}/tokens", json={"label": args.label})
    print(out["token"])
    print(f"token {out['id']} for {args.name}: shown only now; revoke it with "
          f"`pingjia gateway token revoke {out['id']}`", file=sys.stderr)


def _audit(args) -> None:
    for e in reversed(ApiClient(args.home).call("GET", "/api/v1/audit", params={"limit": args.limit})):
        detail = json.dumps(e["detail"], ensure_ascii=False) if e["detail"] else ""
        print(f"{e['at']}  {e['actor']:<14} {e['action']:<20} {e['target'] or '-':<14} {detail}")


def zip_build(folder: Path) -> bytes:
    """A `pingjia firmware build` folder as the zip the API takes."""
    import io
    import zipfile

    if not (folder / "manifest.json").exists():
        raise PingjiaError(f"no firmware build in {folder}: run `pingjia firmware build --out {folder}`")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(folder.iterdir()):
            if p.is_file():
                z.write(p, p.name)
    return out.getvalue()


def _firmware_upload(args) -> None:
    _print(ApiClient(args.home).call("POST", "/api/v1/firmware", content=zip_build(Path(args.build)),
                                     headers={"Content-Type": "application/zip"}))


def _rollout_start(args) -> None:
    body = {"hash": args.hash, "canary": args.canary, "shares": args.shares}
    if args.dev:
        body["devices"] = args.dev
    r = ApiClient(args.home).call("POST", "/api/v1/rollouts", json=body)
    print(f"rollout {r['id']}: {len(r['devices'])} devices in stages of {r['stages']}; "
          f"`pingjia gateway rollout show {r['id']}` follows it", file=sys.stderr)
    _print(r)


def _call(method: str, path: str, body=None):
    """A command that is one API call, its answer printed: path and body are made from
    the parsed arguments."""
    def run(args) -> None:
        kw = {"json": body(args)} if body else {}
        _print(ApiClient(args.home).call(method, path.format(**vars(args)), **kw))
    return run


def register(sub) -> None:
    g = sub.add_parser("gateway", help="the hall gateway")
    gsub = g.add_subparsers(dest="action", required=True)

    def command(parent, name: str, func, help: str) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help)
        p.add_argument("--home", required=True, help="the hall's home folder")
        p.set_defaults(func=func)
        return p

    gi = command(gsub, "init", _init, "create a hall's home folder, settings and certificate authority")
    gi.add_argument("--hall", default="hall1")
    gi.add_argument("--broker-host", default="127.0.0.1", help="the IP address devices reach the broker at")
    gi.add_argument("--broker-port", type=int, default=8883, help="the devices' listener (MQTT over TLS)")
    gi.add_argument("--local-port", type=int, default=1883, help="the gateway's listener, on loopback only")
    gi.add_argument("--api-port", type=int, default=8080)
    gi.add_argument("--platform-url", default="http://127.0.0.1:8090")
    gr = command(gsub, "run", _run, "run ingest, forwarder and API")
    gr.add_argument("--log-file", help=f"log here, rolling over at {LOG_FILE_BYTES // 1_000_000} MB "
                                       f"and keeping {LOG_FILE_KEPT} old files (default: standard error)")
    command(gsub, "broker", _broker, "run the hall's Mosquitto")
    gv = command(gsub, "install-service", _install_service,
                 "systemd units for the broker, the gateway and the nightly backup, run as their own user")
    gv.add_argument("--user", default="pingjia", help="the system user both run as (made if missing)")
    gv.add_argument("--unit-dir", default="/etc/systemd/system")
    gv.add_argument("--print", action="store_true", help="print the units and change nothing")
    command(gsub, "doctor", _doctor, "look the hall's box over and say what to fix (exit 1 on a failure)") \
        .add_argument("--json", action="store_true", help="the findings as JSON")
    gb = command(gsub, "backup", _backup, "back the hall up into one file, while the gateway runs")
    gb.add_argument("--out", help="a file, or a folder for one named by hall and time (default: home/backups, "
                                  "keeping the newest --keep there)")
    gb.add_argument("--keep", type=int, default=None, help="backups kept in the folder (default 7)")
    gs = command(gsub, "restore", _restore, "put a backup into a home, the gateway stopped")
    gs.add_argument("archive")
    gs.add_argument("--force", action="store_true", help="replace the hall in --home (moved aside, not deleted)")

    gd = gsub.add_parser("device", help="the device registry (through the running gateway)")
    dsub = gd.add_subparsers(dest="device_action", required=True)
    ga = command(dsub, "add", _device_add, "register a device at a window; prints its credentials once")
    ga.add_argument("dev")
    ga.add_argument("--window", required=True)
    ga.add_argument("--model", default="five-button", choices=["five-button", "tablet"])
    ga.add_argument("--out", help="write the device's config.json here instead of printing it")
    command(dsub, "list", _device_list, "devices with their health")
    command(dsub, "show", _call("GET", "/api/v1/devices/{dev}"), "one device").add_argument("dev")
    gm = command(dsub, "move", _call("POST", "/api/v1/devices/{dev}/window", lambda a: {"window": a.window}),
                 "assign a device to another window")
    gm.add_argument("dev")
    gm.add_argument("--window", required=True)
    command(dsub, "retire", _call("POST", "/api/v1/devices/{dev}/retire"), "lock a device out for good") \
        .add_argument("dev")
    gt = command(dsub, "rotate", _call("POST", "/api/v1/devices/{dev}/rotate",
                                       lambda a: {"grace_hours": a.grace_hours}),
                 "new key and password for a device")
    gt.add_argument("dev")
    gt.add_argument("--grace-hours", type=float, default=168,
                    help="how long ratings signed with the old key still verify (default a week)")

    gf = gsub.add_parser("firmware", help="firmware builds kept for updates over the air")
    fsub = gf.add_subparsers(dest="firmware_action", required=True)
    command(fsub, "upload", _firmware_upload, "keep a `pingjia firmware build` folder (every file checked)") \
        .add_argument("build")
    command(fsub, "list", _call("GET", "/api/v1/firmware"), "the builds kept")
    go = gsub.add_parser("rollout", help="a build rolled out over the air, in stages")
    osub = go.add_subparsers(dest="rollout_action", required=True)
    os_ = command(osub, "start", _rollout_start, "a canary, then shares of the devices; halts on a rollback")
    os_.add_argument("hash", help="the build's content hash (pingjia gateway firmware list)")
    os_.add_argument("--dev", action="append", help="a device to update; repeat (default: every active one)")
    os_.add_argument("--canary", type=int, default=1, help="devices in the first stage")
    os_.add_argument("--shares", type=float, nargs="+", default=[0.25, 1.0],
                     help="the share of all devices updated after each later stage")
    command(osub, "list", _call("GET", "/api/v1/rollouts"), "rollouts, newest first")
    for name in ("show", "halt", "resume", "cancel"):
        path = "/api/v1/rollouts/{rid}" + ("" if name == "show" else f"/{name}")
        command(osub, name, _call("GET" if name == "show" else "POST", path), f"{name} a rollout") \
            .add_argument("rid", metavar="ID")

    gu = gsub.add_parser("user", help="accounts (through the running gateway)")
    usub = gu.add_subparsers(dest="user_action", required=True)
    ua = command(usub, "add", _user_add, "add an account; a person's password is asked for")
    ua.add_argument("name")
    ua.add_argument("--role", required=True, choices=["admin", "supervisor", "viewer", "technician", "business"])
    ua.add_argument("--window", action="append", help="a supervisor's window; repeat for several")
    ua.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    command(usub, "list", _user_list, "accounts")
    command(usub, "disable", _call("POST", "/api/v1/users/{name}/disable"),
            "disable an account: its logins and tokens end at once").add_argument("name")
    command(usub, "enable", _call("POST", "/api/v1/users/{name}/enable"), "enable an account").add_argument("name")
    up = command(usub, "reset-password", _user_password, "set a new password; the account's logins end")
    up.add_argument("name")
    up.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    ut = command(usub, "token", _user_token, "a new API token for an account (the business system's), printed once")
    ut.add_argument("name")
    ut.add_argument("--label", required=True, help="what it is for, e.g. queue-system")
    gk = gsub.add_parser("token", help="API and login tokens")
    ksub = gk.add_subparsers(dest="token_action", required=True)
    command(ksub, "list", _call("GET", "/api/v1/tokens"), "tokens (IDs only)")
    command(ksub, "revoke", _call("POST", "/api/v1/tokens/{tid}/revoke"), "revoke a token at once") \
        .add_argument("tid", metavar="ID")
    ga2 = command(gsub, "audit", _audit, "the audit log, oldest of the newest first")
    ga2.add_argument("--limit", type=int, default=50)

    si = command(gsub, "sign-in", _call("POST", "/api/v1/windows/{window}/sign-in",
                                        lambda a: {"staff_id": a.staff_id, "staff_name": a.staff_name}),
                 "a staff member signs in at a window")
    si.add_argument("window")
    si.add_argument("staff_id")
    si.add_argument("staff_name")
    command(gsub, "sign-out", _call("POST", "/api/v1/windows/{window}/sign-out"),
            "the staff member at a window signs out").add_argument("window")
    gc = command(gsub, "case", _call("POST", "/api/v1/cases", lambda a: {
        "serial": a.serial, "window": a.window, "items": [{"code": c, "name": n} for c, n in a.item]}),
        "a case was completed at a window")
    gc.add_argument("serial")
    gc.add_argument("--window", required=True)
    gc.add_argument("--item", nargs=2, action="append", required=True, metavar=("CODE", "NAME"),
                    help="the item; repeat for a batch case")


def build_parser() -> argparse.ArgumentParser:
    """`pingjia` with the commands of every installed part (entry points "pingjia.commands")."""
    p = argparse.ArgumentParser(prog="pingjia", description="Pingjia: window evaluators and the hall gateway.")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = p.add_subparsers(dest="command", required=True)
    for ep in sorted(entry_points(group="pingjia.commands"), key=lambda e: e.name):
        ep.load()(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = None
    if getattr(args, "log_file", None):
        handlers = [RotatingFileHandler(args.log_file, maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILE_KEPT,
                                        encoding="utf-8")]
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=handlers,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request drowns the rest
    try:
        return args.func(args) or 0
    except PingjiaError as e:
        print(f"pingjia: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
