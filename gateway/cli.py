"""The `pingjia` command. Each subcommand imports only what it needs.

`pingjia gateway device ...` and the session and case commands are thin clients of the
running gateway's HTTP API, so the CLI and the API can never disagree.
"""

from __future__ import annotations

import argparse
import importlib
import ipaddress
import json
import logging
import sys
from pathlib import Path

LOG_FILE_BYTES = 5_000_000  # a log file rolls over at this size, keeping LOG_FILE_KEPT old ones
LOG_FILE_KEPT = 3


def _command(module: str):
    """A subcommand whose module (simulator, firmware, benchmarks) loads only when it runs."""
    return lambda args: importlib.import_module(module).main(args)


def _print(data) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


class ApiClient:
    def __init__(self, home: str):
        import httpx

        from .config import Config

        self.cfg = Config.load(home)
        self.httpx = httpx
        self.http = httpx.Client(base_url=self.cfg.api_url, timeout=30,
                                 headers={"Authorization": f"Bearer {self.cfg.api_token}"})

    def call(self, method: str, path: str, **kw):
        try:
            r = self.http.request(method, path, **kw)
        except self.httpx.ConnectError:
            raise SystemExit(f"the gateway is not running at {self.cfg.api_url}: "
                             f"start it with `pingjia gateway run --home {self.cfg.home}`") from None
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail")
            except ValueError:
                detail = r.text
            raise SystemExit(f"error {r.status_code}: {json.dumps(detail, ensure_ascii=False)}")
        return r.json()


def _init(args) -> int:
    from . import store
    from .broker import Broker
    from .config import Config

    path = Path(args.home)
    if (path / "gateway.json").exists():
        print(f"{path}/gateway.json exists; leaving it as it is", file=sys.stderr)
        cfg = Config.load(path)
    else:
        try:
            ipaddress.ip_address(args.broker_host)
        except ValueError:
            raise SystemExit(f"--broker-host must be an IP address (devices do no DNS; the broker's "
                             f"certificate names it): {args.broker_host!r}") from None
        cfg = Config(home=path, hall=args.hall, broker_host=args.broker_host, broker_port=args.broker_port,
                     local_port=args.local_port, api_port=args.api_port, platform_url=args.platform_url)
        cfg.save()
    db = store.open_db(cfg.db_path)
    Broker(cfg).write_config(store.device_hashes(db))
    print(f"hall {cfg.hall} at {path}: broker config {cfg.broker_dir}/mosquitto.conf"
          f"{', hall CA ' + str(cfg.tls_dir / 'ca.crt') if cfg.broker_tls else ''}, API {cfg.api_url}")
    return 0


def _run(args) -> int:
    from .config import Config
    from .service import Gateway

    Gateway(Config.load(args.home)).run()
    return 0


def _broker(args) -> int:
    from . import store
    from .broker import Broker
    from .config import Config

    cfg = Config.load(args.home)
    broker = Broker(cfg)
    broker.write_config(store.device_hashes(store.open_db(cfg.db_path)))
    proc = broker.start()
    print(f"mosquitto listening on {cfg.broker_host}:{cfg.broker_port} for devices"
          f"{' (TLS)' if cfg.broker_tls else ''} and 127.0.0.1:{cfg.local_port} for the gateway (pid {proc.pid})",
          file=sys.stderr)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        broker.stop()
        return 0


def _device(args) -> int:
    api = ApiClient(args.home)
    a = args.device_action
    if a == "add":
        creds = api.call("POST", "/api/v1/devices", json={"dev": args.dev, "window": args.window, "model": args.model})
        if args.out:
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(creds, ensure_ascii=False))
            out.chmod(0o600)
            print(f"device config for {args.dev} written to {out}", file=sys.stderr)
        else:
            _print(creds)
        print("the key and password are shown only now: put them on the device", file=sys.stderr)
    elif a == "list":
        for d in api.call("GET", "/api/v1/devices"):
            h = d["health"] or {}
            print(f"{d['dev']:<12} {d['window']:<8} {d['state']:<11} "
                  f"{'online' if d['online'] else 'offline':<8} {'stale' if d['stale'] else 'fresh':<6} "
                  f"fw={d['fw'] or '-'} outbox={h.get('outbox', '-')}")
    elif a == "show":
        _print(api.call("GET", f"/api/v1/devices/{args.dev}"))
    elif a == "move":
        _print(api.call("POST", f"/api/v1/devices/{args.dev}/window", json={"window": args.window}))
    elif a == "retire":
        _print(api.call("POST", f"/api/v1/devices/{args.dev}/retire"))
    elif a == "rotate":
        _print(api.call("POST", f"/api/v1/devices/{args.dev}/rotate", json={"grace_hours": args.grace_hours}))
    return 0


def _session(args) -> int:
    api = ApiClient(args.home)
    if args.action == "sign-in":
        _print(api.call("POST", f"/api/v1/windows/{args.window}/sign-in",
                        json={"staff_id": args.staff_id, "staff_name": args.staff_name}))
    elif args.action == "sign-out":
        _print(api.call("POST", f"/api/v1/windows/{args.window}/sign-out"))
    elif args.action == "case":
        items = [{"code": c, "name": n} for c, n in args.item]
        _print(api.call("POST", "/api/v1/cases", json={"serial": args.serial, "window": args.window, "items": items}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pingjia", description="Pingjia: window evaluators and the hall gateway.")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("gateway", help="the hall gateway")
    gsub = g.add_subparsers(dest="action", required=True)

    def home(parser):
        parser.add_argument("--home", required=True, help="the hall's home folder")
        return parser

    gi = home(gsub.add_parser("init", help="create a hall's home folder and settings"))
    gi.add_argument("--hall", default="hall1")
    gi.add_argument("--broker-host", default="127.0.0.1", help="the address devices reach the broker at")
    gi.add_argument("--broker-port", type=int, default=8883, help="the devices' listener (MQTT over TLS)")
    gi.add_argument("--local-port", type=int, default=1883, help="the gateway's listener, on loopback only")
    gi.add_argument("--api-port", type=int, default=8080)
    gi.add_argument("--platform-url", default="http://127.0.0.1:8090")
    gi.set_defaults(func=_init)
    gr = home(gsub.add_parser("run", help="run ingest, forwarder and API"))
    gr.add_argument("--log-file", help=f"log here, rolling over at {LOG_FILE_BYTES // 1_000_000} MB "
                                       f"and keeping {LOG_FILE_KEPT} old files (default: standard error)")
    gr.set_defaults(func=_run)
    home(gsub.add_parser("broker", help="run the hall's Mosquitto")).set_defaults(func=_broker)

    gd = gsub.add_parser("device", help="the device registry (through the running gateway)")
    gdsub = gd.add_subparsers(dest="device_action", required=True)
    ga = home(gdsub.add_parser("add", help="register a device at a window; prints its credentials once"))
    ga.add_argument("dev")
    ga.add_argument("--window", required=True)
    ga.add_argument("--model", default="five-button", choices=["five-button", "tablet"])
    ga.add_argument("--out", help="write the device's config.json here instead of printing it")
    home(gdsub.add_parser("list", help="devices with their health"))
    home(gdsub.add_parser("show", help="one device")).add_argument("dev")
    gm = home(gdsub.add_parser("move", help="assign a device to another window"))
    gm.add_argument("dev")
    gm.add_argument("--window", required=True)
    home(gdsub.add_parser("retire", help="lock a device out for good")).add_argument("dev")
    gr = home(gdsub.add_parser("rotate", help="new key and password for a device"))
    gr.add_argument("dev")
    gr.add_argument("--grace-hours", type=float, default=168,
                    help="how long ratings signed with the old key still verify (default a week)")
    gd.set_defaults(func=_device)

    si = home(gsub.add_parser("sign-in", help="a staff member signs in at a window"))
    si.add_argument("window")
    si.add_argument("staff_id")
    si.add_argument("staff_name")
    si.set_defaults(func=_session)
    so = home(gsub.add_parser("sign-out", help="the staff member at a window signs out"))
    so.add_argument("window")
    so.set_defaults(func=_session)
    gc = home(gsub.add_parser("case", help="a case was completed at a window"))
    gc.add_argument("serial")
    gc.add_argument("--window", required=True)
    gc.add_argument("--item", nargs=2, action="append", required=True, metavar=("CODE", "NAME"),
                    help="the item; repeat for a batch case")
    gc.set_defaults(func=_session)

    d = sub.add_parser("demo", help="a whole hall on this machine: broker, gateway, stand-ins, virtual devices")
    d.add_argument("--devices", type=int, default=4)
    d.add_argument("--ratings", type=int, default=None, help="make exactly this many presses, drain, exit")
    d.add_argument("--home", default=None, help="folder for the demo's data (default: a temporary one)")
    d.set_defaults(func=_command("simulator.commands.demo"))

    fw = sub.add_parser("firmware", help="the device firmware")
    fwsub = fw.add_subparsers(dest="firmware_action", required=True)
    fb = fwsub.add_parser("build", help="compile the device code to .mpy with a manifest")
    fb.add_argument("--out", default="build/firmware", help="output folder (rebuilt from nothing)")
    fb.add_argument("--charset", choices=["gb2312", "gbk"], default="gb2312",
                    help="characters in the display font: gb2312 (about 250 KB) or gbk (about 740 KB)")
    fb.set_defaults(func=_command("firmware.build"))

    sm = sub.add_parser("sim", help="the simulator: virtual devices and scenarios")
    smsub = sm.add_subparsers(dest="sim", required=True)
    sd = smsub.add_parser("devices", help="real-firmware devices as serial ports (mpremote works on them) in a running hall; commands on stdin")
    sd.add_argument("--count", type=int, default=3)
    sd.add_argument("--seed", type=int, default=None)
    sd.add_argument("--home", default=None)
    sd.set_defaults(func=_command("simulator.commands.devices"))
    sh = smsub.add_parser("hall", help="a hall day with the real firmware at every window; a summary table")
    sh.add_argument("--windows", type=int, default=4)
    sh.add_argument("--minutes", type=float, default=2.0, help="length of the compressed day")
    sh.add_argument("--seed", type=int, default=None)
    sh.add_argument("--home", default=None)
    sh.set_defaults(func=_command("simulator.commands.hall"))
    sc = smsub.add_parser("chaos", help="real-firmware devices rating while gateway, broker, devices and platform fail")
    sc.add_argument("--devices", type=int, default=50)
    sc.add_argument("--ratings", type=int, default=5000, help="at least this many confirmed ratings")
    sc.add_argument("--kills", type=int, default=10, help="at least this many kill -9 of the gateway")
    sc.add_argument("--drain-timeout", type=float, default=600)
    sc.add_argument("--seed", type=int, default=None)
    sc.add_argument("--home", default=None)
    sc.set_defaults(func=_command("simulator.commands.chaos"))
    sl = smsub.add_parser("load", help="protocol-level virtual devices rating at a steady rate")
    sl.add_argument("--devices", type=int, default=10000)
    sl.add_argument("--rate", type=float, default=1000, help="ratings/s, all devices together")
    sl.add_argument("--seconds", type=float, default=30)
    sl.add_argument("--windows", type=int, default=100, help="the hall's windows the devices spread over")
    sl.add_argument("--heartbeat", type=float, default=60, help="seconds between a device's heartbeats")
    sl.add_argument("--home", default=None)
    sl.set_defaults(func=_command("simulator.commands.load"))

    b = sub.add_parser("bench", help="benchmarks; each prints a JSON line last")
    bsub = b.add_subparsers(dest="bench", required=True)
    bi = bsub.add_parser("ingest", help="the gateway's durable ingest: throughput, ack latency, 10,000 devices")
    bi.add_argument("--ratings", type=int, default=30000, help="ratings for the throughput runs")
    bi.add_argument("--publishers", type=int, default=50, help="devices publishing in the throughput runs")
    bi.add_argument("--runs", type=int, default=3, help="throughput runs of each kind; the median is reported")
    bi.add_argument("--rate", type=int, default=1000, help="ratings/s for the latency run")
    bi.add_argument("--seconds", type=float, default=10, help="length of the latency run")
    bi.add_argument("--devices", type=int, default=10000, help="devices connected at once")
    bi.add_argument("--heartbeat", type=float, default=60, help="seconds between a device's heartbeats")
    bi.add_argument("--hold", type=float, default=65, help="seconds to hold the devices connected")
    bi.add_argument("--window", type=int, default=100, help="the broker's in-flight window = the largest group commit")
    bi.add_argument("--group-wait-ms", type=float, default=2.0, help="how long a group waits for company")
    bi.add_argument("--home", default=None)
    bi.set_defaults(func=_command("simulator.bench.ingest"))
    bf = bsub.add_parser("firmware", help="the evaluator firmware: heap, press-to-confirm latency, outbox")
    bf.add_argument("--ratings", type=int, default=1000, help="ratings through the whole flow")
    bf.add_argument("--heap", default="128k", help="the device's MicroPython heap (64k: see README)")
    bf.add_argument("--home", default=None)
    bf.set_defaults(func=_command("simulator.bench.firmware"))

    bfl = bsub.add_parser("flood", help="a stolen login floods the hall: memory, and honest ratings meanwhile")
    bfl.add_argument("--seconds", type=float, default=20, help="length of each flood (QoS 0, then QoS 1)")
    bfl.add_argument("--size", type=int, default=4000, help="bytes per garbage message")
    bfl.add_argument("--baseline", type=int, default=5, help="ratings timed before the flood")
    bfl.add_argument("--home", default=None)
    bfl.set_defaults(func=_command("simulator.bench.flood"))
    bd = bsub.add_parser("drain", help="forwarding after a platform outage: delivered, duplicates, drain rate")
    bd.add_argument("--ratings", type=int, default=100000)
    bd.add_argument("--rate", type=float, default=1000, help="records/s the returning platform accepts (R)")
    bd.add_argument("--error-rate", type=float, default=0.1, help="share of requests it fails")
    bd.add_argument("--profile", default="national")
    bd.add_argument("--publishers", type=int, default=50)
    bd.add_argument("--timeout", type=float, default=1800, help="give up draining after this many seconds")
    bd.add_argument("--home", default=None)
    bd.set_defaults(func=_command("simulator.bench.drain"))

    ps = sub.add_parser("platform-sim", help="the provincial platform stand-in, with fault injection")
    ps.add_argument("--port", type=int, default=8090)
    ps.add_argument("--profile", default="national", help="province profile: national, provincial or a path")
    ps.add_argument("--app-key", default="pingjia")
    ps.add_argument("--app-secret-file", help="a file holding the secret the gateway signs requests with "
                    "(or set PINGJIA_PLATFORM_SECRET; never on the command line, where `ps` shows it)")
    ps.add_argument("--rate", type=float, default=None, help="records/s it accepts (default: the profile's)")
    ps.add_argument("--error-rate", type=float, default=0, help="share of requests answered 503")
    ps.add_argument("--latency-ms", type=float, default=0)
    ps.add_argument("--timeout-rate", type=float, default=0, help="share of requests that hang")
    ps.add_argument("--lost-reply-rate", type=float, default=0, help="share stored, then answered 500")
    ps.add_argument("--drop-rate", type=float, default=0, help="share stored, then the connection dropped")
    ps.add_argument("--dup-reply-rate", type=float, default=0, help="share of re-sent records answered 'accepted'")
    ps.add_argument("--outage-s", type=float, default=0, help="answer 503 to everything for this long")
    ps.add_argument("--seed", type=int, default=None)
    ps.set_defaults(func=lambda a: __import__("simulator.platform_sim", fromlist=["serve"]).serve(a))
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = None
    if getattr(args, "log_file", None):
        from logging.handlers import RotatingFileHandler

        handlers = [RotatingFileHandler(args.log_file, maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILE_KEPT,
                                        encoding="utf-8")]
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=handlers,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request drowns the rest
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
