"""The `pingjia` command. Each subcommand imports only what it needs."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def _gateway(args) -> int:
    from . import store
    from .broker import Broker
    from .config import Config

    if args.action == "init":
        path = Path(args.home)
        if (path / "gateway.json").exists():
            print(f"{path}/gateway.json exists; leaving it as it is", file=sys.stderr)
            cfg = Config.load(path)
        else:
            cfg = Config(home=path, hall=args.hall, broker_port=args.broker_port, api_port=args.api_port,
                         platform_url=args.platform_url)
            cfg.save()
        db = store.open_db(cfg.db_path)
        Broker(cfg).write_config(store.device_hashes(db))
        print(f"hall {cfg.hall} at {path}: broker config {cfg.broker_dir}/mosquitto.conf, API {cfg.api_url}")
        return 0
    cfg = Config.load(args.home)
    if args.action == "run":
        from .service import Gateway

        Gateway(cfg).run()
        return 0
    if args.action == "broker":
        broker = Broker(cfg)
        broker.write_config(store.device_hashes(store.open_db(cfg.db_path)))
        proc = broker.start()
        print(f"mosquitto listening on {cfg.broker_host}:{cfg.broker_port} (pid {proc.pid})")
        try:
            return proc.wait()
        except KeyboardInterrupt:
            broker.stop()
            return 0
    if args.action == "device" and args.device_action == "add":
        db = store.open_db(cfg.db_path)
        try:
            creds = store.add_device(db, args.dev, args.window)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        broker = Broker(cfg)
        broker.write_config(store.device_hashes(db))
        broker.reload()
        creds.update(hall=cfg.hall, broker=[cfg.broker_host, cfg.broker_port])
        print(json.dumps(creds, indent=2))
        print("the key and password are shown only now: put them on the device", file=sys.stderr)
        return 0
    raise AssertionError(args.action)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pingjia", description="Pingjia: window evaluators and the hall gateway.")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("gateway", help="the hall gateway")
    gsub = g.add_subparsers(dest="action", required=True)
    gi = gsub.add_parser("init", help="create a hall's home folder and settings")
    gi.add_argument("--home", required=True)
    gi.add_argument("--hall", default="hall1")
    gi.add_argument("--broker-port", type=int, default=1883)
    gi.add_argument("--api-port", type=int, default=8080)
    gi.add_argument("--platform-url", default="http://127.0.0.1:8090")
    for name, text in (("run", "run ingest, forwarder and API"), ("broker", "run the hall's Mosquitto")):
        gsub.add_parser(name, help=text).add_argument("--home", required=True)
    gd = gsub.add_parser("device", help="the hall's device registry")
    gdsub = gd.add_subparsers(dest="device_action", required=True)
    ga = gdsub.add_parser("add", help="register a device at a window; prints its credentials once")
    ga.add_argument("--home", required=True)
    ga.add_argument("dev")
    ga.add_argument("--window", required=True)
    g.set_defaults(func=_gateway)

    d = sub.add_parser("demo", help="a whole hall on this machine: broker, gateway, stand-ins, virtual devices")
    d.add_argument("--devices", type=int, default=4)
    d.add_argument("--ratings", type=int, default=None, help="make exactly this many presses, drain, exit")
    d.add_argument("--home", default=None, help="folder for the demo's data (default: a temporary one)")
    d.set_defaults(func=lambda a: __import__("simulator.demo", fromlist=["main"]).main(a))

    ps = sub.add_parser("platform-sim", help="the provincial platform stand-in")
    ps.add_argument("--port", type=int, default=8090)
    ps.add_argument("--token", default="platform-token")
    ps.set_defaults(func=lambda a: __import__("simulator.platform", fromlist=["serve"]).serve(a.port, a.token))

    args = p.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request drowns the rest
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
