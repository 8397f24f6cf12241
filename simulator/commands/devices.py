"""`pingjia sim devices`: virtual evaluators as serial ports, in a running hall.

N devices run the real firmware under MicroPython, each with its own flash folder and a
serial port (a pty, linked as HOME/ports/<device>) with the REPL behind it, so
`mpremote connect <port> ...` works as it does on a USB-connected ESP32. The hall around
them is real too: Mosquitto, the gateway with its dashboard, the platform and business
stand-ins. It runs until `quit`, Ctrl-C or SIGTERM.

Commands on standard input, one per line; each answers with one JSON line on stdout:
"""

from __future__ import annotations

import json
import signal
import sys
import tempfile
import threading
from pathlib import Path

from gateway.protocol import BAD_LEVELS

from .. import say, screen
from ..harness import TABLET_PARTS, Hall
from ..virtual_device import LEVEL_BUTTON, VirtualDevice

COMMANDS = {
    "list": "the devices: window, serial port, flash folder, online, boots",
    "case DEV": "the business system completes a case at DEV's window",
    "press DEV LEVEL [REASON] [PART=LEVEL ...]": "a citizen rates what DEV shows (levels: "
                                                 + " ".join(LEVEL_BUTTON) + "); a tablet also takes parts, "
                                                 "e.g. staff=satisfied",
    "button DEV N": "one press of button N (1-5)",
    "targets DEV": "what a tablet's screen offers to tap, and where",
    "touch DEV TARGET|X,Y": "one tap on a tablet: a target's middle, or a point",
    "screen DEV FILE": "save DEV's screen as a PNG",
    "power DEV off|on": "cut DEV's power (kill -9) or power it on",
    "wifi DEV off|on": "DEV's Wi-Fi link lost or back",
    "drift DEV MS": "DEV's clock jumps by MS milliseconds",
    "quit": "stop everything",
}
__doc__ += "".join(f"  {k:<26} {v}\n" for k, v in COMMANDS.items())


class Console:
    """The commands, over a started hall whose devices have serial ports."""

    def __init__(self, hall: Hall):
        self.hall = hall

    def device(self, dev: str) -> dict:
        d = self.hall.devices[dev]
        link = self.hall.controller.links.get(dev)
        return {"dev": dev, "window": self.hall.windows[dev], "model": d.model, "port": str(d.port.link),
                "tty": d.port.tty,
                "flash": str(d.flash), "online": bool(link and link.link_up), "boots": d.boots}

    def run(self, line: str) -> dict:
        words = line.split()
        if not words:
            return {}
        cmd, args = words[0], words[1:]
        if cmd == "help":
            return {"commands": COMMANDS}
        if cmd == "list":
            return {"devices": [self.device(dev) for dev in self.hall.devices]}
        if not args or args[0] not in self.hall.devices:
            raise ValueError(f"`{cmd}` needs a device: one of {', '.join(self.hall.devices)}")
        dev = args[0]
        if cmd == "case" and len(args) == 1:
            return {"dev": dev, "case": self.hall.new_case(dev)}
        if cmd == "press" and len(args) >= 2:
            level = args[1]
            reason = args[2] if len(args) > 2 and "=" not in args[2] else None
            parts = dict(a.split("=", 1) for a in args[2 + (reason is not None):] if "=" in a)
            if level not in LEVEL_BUTTON or any(v not in LEVEL_BUTTON for v in parts.values()):
                raise ValueError(f"unknown level in {line.strip()!r}")
            if (level in BAD_LEVELS) != (reason is not None):
                raise ValueError("a reason goes with dissatisfied and very_dissatisfied, and only with them")
            if parts and self.hall.devices[dev].model != "tablet":
                raise ValueError(f"{dev} has five buttons: parts are rated on a tablet")
            if set(parts) - set(TABLET_PARTS):
                raise ValueError(f"the tablet's parts are {', '.join(TABLET_PARTS)}")
            return self.hall.press(dev, level, reason, parts=parts)
        if cmd == "targets" and len(args) == 1:
            return {"dev": dev, "lines": self.link(dev).display, "targets": self.link(dev).targets}
        if cmd == "touch" and len(args) == 2:
            if self.hall.devices[dev].model != "tablet":
                raise ValueError(f"{dev} has five buttons, not a touch screen")
            xy = args[1].split(",")
            if len(xy) == 2 and all(v.isdigit() for v in xy):
                self.link(dev).send({"touch": [int(xy[0]), int(xy[1])]})
            else:
                self.link(dev).touch(args[1], timeout=0)
            return {"dev": dev, "touch": args[1]}
        if cmd == "button" and len(args) == 2 and args[1] in "12345":
            self.link(dev).press(int(args[1]))
            return {"dev": dev, "button": int(args[1])}
        if cmd == "screen" and len(args) == 2:
            return {"dev": dev, "png": str(screen.save(self.link(dev).screen(), args[1]).resolve())}
        if cmd in ("power", "wifi") and len(args) == 2 and args[1] in ("on", "off"):
            on = args[1] == "on"
            if cmd == "wifi":
                self.link(dev).send({"wifi": on})
            elif on:
                self.hall.devices[dev].start()
            else:
                self.hall.devices[dev].power_cut()
                self.hall.controller.forget(dev)
            return {"dev": dev, cmd: args[1]}
        if cmd == "drift" and len(args) == 2 and args[1].lstrip("-").isdigit():
            self.link(dev).send({"clock_ms": int(args[1])})
            return {"dev": dev, "drift_ms": int(args[1])}
        raise ValueError(f"not a command: {line.strip()!r} (try `help`)")

    def link(self, dev: str):
        link = self.hall.controller.links.get(dev)
        if link is None or not link.link_up:
            raise ValueError(f"{dev}'s app is not running (powered off, or stopped at its REPL)")
        return link


HALL_WIFI = ("hall-wifi", "hall-wifi-password")  # the simulated hall's Wi-Fi, for blank boards


def main(args) -> int:
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="pingjia-devices-"))
    hall = Hall(home, devices=args.count, hall="devices", seed=args.seed, serial=True,
                model=getattr(args, "model", "five-button"))
    say(f"starting a hall with {args.count} serial devices ({hall.model}) in {home} ...")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    hall.start()
    blanks = [VirtualDevice(home / "devices" / f"new-{i}", None, port=home / "ports" / f"new-{i}", wifi=HALL_WIFI)
              for i in range(1, args.blank + 1)]
    for b in blanks:
        b.start()
    try:
        console = Console(hall)
        for d in console.run("list")["devices"]:
            say(f"{d['dev']}  {d['window']}  {d['model']}  {d['port']} -> {d['tty']}  flash {d['flash']}")
        for b in blanks:
            say(f"{b.flash.name}  blank board (MicroPython only)  {b.port.link}; the hall Wi-Fi is "
                f"{HALL_WIFI[0]}, password {HALL_WIFI[1]}: pingjia device setup {b.port.link} --window W09 "
                f"--dev pj-0099 --home {home} --wifi {HALL_WIFI[0]}")
        say(f"gateway API: {hall.cfg.api_url}/docs   (bearer token: {hall.token})")
        say("try: mpremote connect <port> exec \"import os; print(os.listdir())\"; `help` for commands")
        print(json.dumps({"ready": True, "home": str(home), "api": hall.cfg.api_url,
                          "ports": {dev: str(d.port.link) for dev, d in hall.devices.items()},
                          "blank": {b.flash.name: str(b.port.link) for b in blanks}}), flush=True)
        threading.Thread(target=_read_commands, args=(console, stop), daemon=True).start()
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        say("stopping ...")
        for b in blanks:
            b.stop()
        hall.stop()
    return 0


def _read_commands(console: Console, stop: threading.Event) -> None:
    # EOF on stdin (started in the background, say) leaves the devices running
    for line in sys.stdin:
        if line.strip() == "quit":
            break
        try:
            out = console.run(line)
        except (ValueError, LookupError, TimeoutError, OSError) as e:
            out = {"error": str(e)}
        if out:
            print(json.dumps(out, ensure_ascii=False), flush=True)
    else:
        return
    stop.set()
