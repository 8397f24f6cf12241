"""`pingjia sim chaos`: real-firmware evaluators rate at a steady pace while everything
else fails, again and again; then it all drains and nothing may be lost or doubled.

The monkey, in turn: kill -9 of the gateway (then starts it), a Mosquitto restart, a
device's power cut (kill -9, power on), a device's Wi-Fi lost for a few seconds (the
citizen rates meanwhile: kept in flash), and a platform outage; the platform fails 30 %
of requests throughout. A device is cut between two citizens (tests/test_power_cuts.py
cuts at random moments inside a press). The last line is JSON: pressed, stored,
forwarded, duplicates, lost, mistagged, gateway_kills and the other faults' counts.
"""

from __future__ import annotations

import json
import random
import tempfile
import threading
import time
from pathlib import Path

import httpx

from .. import say
from ..harness import Hall

PLATFORM_ERROR_RATE = 0.3


class Chaos:
    def __init__(self, hall: Hall, ratings: int, kills: int, rng: random.Random):
        self.hall, self.ratings, self.kills, self.rng = hall, ratings, kills, rng
        self.pressed: list[dict] = []
        self.failed_presses = 0  # not confirmed to the citizen: no promise was made
        self.faults = {"gateway_kills": 0, "broker_restarts": 0, "power_cuts": 0, "link_cuts": 0,
                       "platform_outages": 0}
        self.locks = {dev: threading.Lock() for dev in hall.devices}
        self.lock = threading.Lock()

    def done(self) -> bool:
        return (len(self.pressed) >= self.ratings and self.faults["gateway_kills"] >= self.kills
                and all(self.faults.values()))  # and every kind of fault at least once

    def rater(self, dev: str) -> None:
        rng = random.Random(self.rng.random())
        while not self.done():
            with self.locks[dev]:
                try:
                    p = self.hall.rate(dev)
                except TimeoutError:
                    with self.lock:
                        self.failed_presses += 1
                    continue
            with self.lock:
                self.pressed.append(p)
            time.sleep(rng.uniform(0, 0.3))

    def monkey(self) -> None:
        h, rng = self.hall, self.rng
        actions = [self.kill_gateway, self.power_cut, self.restart_broker, self.kill_gateway,
                   self.link_cut, self.platform_outage]
        i = 0
        while not self.done():
            time.sleep(rng.uniform(1.5, 4.0))
            actions[i % len(actions)]()
            i += 1
            say(f"pressed {len(self.pressed)}  faults {self.faults}")
        h.platform_faults = []

    def kill_gateway(self) -> None:
        self.hall.kill_gateway()
        time.sleep(self.rng.uniform(0.2, 2.0))
        self.hall.start_gateway()
        self.faults["gateway_kills"] = self.hall.gateway_kills

    def restart_broker(self) -> None:
        self.hall.broker.stop()
        time.sleep(self.rng.uniform(0.2, 1.5))
        self.hall.broker.start()
        self.faults["broker_restarts"] += 1

    def power_cut(self) -> None:
        dev = self.rng.choice(list(self.hall.devices))
        with self.locks[dev]:
            d = self.hall.devices[dev]
            d.power_cut()
            self.hall.controller.forget(dev)
            time.sleep(self.rng.uniform(0, 1.0))
            d.start()
            self.hall.controller.link(dev, timeout=20)
        self.faults["power_cuts"] += 1

    def link_cut(self) -> None:
        dev = self.rng.choice(list(self.hall.devices))
        with self.locks[dev]:
            link = self.hall.controller.link(dev)
            link.send({"wifi": False})
            link.wait(lambda l: not l.link_up, 10)
            for _ in range(self.rng.randint(1, 2)):  # rated offline, against the session
                try:
                    p = self.hall.press(dev, *self.hall.random_level())
                    with self.lock:
                        self.pressed.append(p)
                except TimeoutError:
                    with self.lock:
                        self.failed_presses += 1
            link.send({"wifi": True})
        self.faults["link_cuts"] += 1

    def platform_outage(self) -> None:
        httpx.post(f"{self.hall.cfg.platform_url}/sim/faults", timeout=10,
                   json={"error_rate": PLATFORM_ERROR_RATE, "outage_s": self.rng.uniform(5, 15)}).raise_for_status()
        self.faults["platform_outages"] += 1


def run(args) -> dict:
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="pingjia-chaos-"))
    hall = Hall(home, devices=args.devices, hall="chaos", seed=args.seed)
    hall.platform_faults = ["--error-rate", str(PLATFORM_ERROR_RATE)]
    say(f"starting {args.devices} real-firmware devices in {home} ...")
    hall.start()
    try:
        chaos = Chaos(hall, args.ratings, args.kills, random.Random(args.seed))
        t0 = time.monotonic()
        threads = [threading.Thread(target=chaos.rater, args=(dev,), daemon=True) for dev in hall.devices]
        for t in threads:
            t.start()
        chaos.monkey()
        for t in threads:
            t.join(120)
        say(f"chaos over after {time.monotonic() - t0:.0f} s; draining ...")
        t1 = time.monotonic()
        hall.wait_drained(chaos.pressed, timeout=args.drain_timeout)
        s = hall.summary(chaos.pressed)
        return {**s, **chaos.faults, "failed_presses": chaos.failed_presses, "devices": args.devices,
                "chaos_s": round(t1 - t0), "drain_s": round(time.monotonic() - t1),
                "rejections": hall.rejection_counts()}
    finally:
        hall.stop()


def main(args) -> int:
    r = run(args)
    print(json.dumps(r))
    ok = r["lost"] == r["duplicates"] == r["mistagged"] == 0 and r["stored"] == r["forwarded"] == r["pressed"]
    return 0 if ok else 1
