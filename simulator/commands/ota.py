"""`pingjia sim ota`: updates over the air on real-firmware devices, through a real gateway.

1. A good build rolled out to every device in stages (a canary, then 30 %, then all)
   while citizens rate: each device's time from the command to healthy on the new build.
2. Two broken builds (one fails to import, one never reaches the gateway), each rolled
   back on its canary with the rollout halted by itself.
3. Power cuts (kill -9) at random moments of updates between two good builds, on
   several devices at once: after each, the device must boot a complete version (every
   file of its active slot matching that slot's manifest) and come back online.
Every rating confirmed to a citizen, before, during and after, must be stored once. The
last line is JSON.
"""

from __future__ import annotations

import collections
import hashlib
import json
import random
import tempfile
import threading
import time
from pathlib import Path

from .. import builds, say
from ..harness import Hall, wait_until
from ..load import percentile

TRIAL_S = 20  # the devices' trial: a build that cannot reach the gateway is rolled back after this


def complete(flash: Path) -> bool:
    """Whether the flash boots a whole version: the boot path in its root (installed over
    USB, never over the air) and every file of the slot its next boot runs (slots.py: a
    trial not yet tried, else the active one) as that slot's manifest says."""
    try:
        st = json.loads((flash / "slot.json").read_text())
        slot = st["trial"] if st.get("trial") and not st.get("tried") else st["active"]
        m = json.loads((flash / slot / "manifest.json").read_text())
    except (OSError, ValueError, KeyError):
        return False
    boot = (flash / "main.py").exists() and any((flash / n).exists() for n in ("slots.py", "slots.mpy"))
    return boot and all((p := flash / slot / n).exists() and hashlib.sha256(p.read_bytes()).hexdigest() == h
                        for n, h in m["files"].items())


def phase(flash: Path, target: str) -> str:
    """Where an update to `target` stood when the power went: not begun, fetching (a file
    half written in the other slot), switched and waiting for its trial boot, on trial, or
    committed."""
    try:
        st = json.loads((flash / "slot.json").read_text())
        active = json.loads((flash / st["active"] / "manifest.json").read_text())["content_hash"]
    except (OSError, ValueError, KeyError):
        return "unreadable"
    if st.get("trial"):
        return "on_trial" if st.get("tried") else "switched"
    if active == target:
        return "committed"
    other = flash / ("slot.b" if st["active"] == "slot.a" else "slot.a")
    return "fetching" if any(other.glob("*.part")) else "before_switch"


class Run:
    def __init__(self, hall: Hall, rng: random.Random):
        self.hall = hall
        self.rng = rng
        self.pressed: list[dict] = []
        self.lock = threading.Lock()

    def upload(self, folder: Path) -> str:
        from gateway.cli import zip_build

        r = self.hall.api.post("/api/v1/firmware", content=zip_build(folder),
                               headers={"Content-Type": "application/zip"})
        r.raise_for_status()
        return r.json()["hash"]

    def rollout(self, h: str, devices: list[str] | None = None, shares: list[float] | None = None) -> int:
        body = {"hash": h, "canary": 1, "shares": [1.0] if shares is None else shares}
        if devices is not None:
            body["devices"] = devices
        r = self.hall.api.post("/api/v1/rollouts", json=body)
        r.raise_for_status()
        return r.json()["id"]

    def wait(self, rid: int, timeout: float) -> dict:
        return wait_until(lambda: (r := self.hall.api.get(f"/api/v1/rollouts/{rid}").json())["state"]
                          in ("done", "halted", "cancelled") and r, timeout, interval=0.5, what=f"rollout {rid}")

    def rate(self, dev: str) -> None:
        """A citizen rates a case at the device, if it is up to take one."""
        try:
            self.hall.new_case(dev, timeout=10)
            p = self.hall.press(dev, *self.hall.random_level(), timeout=10)
        except (TimeoutError, KeyError):
            return  # rebooting for its update: the citizen walks away unrated
        with self.lock:
            self.pressed.append(p)

    def keep_rating(self, devs: list[str], stop: threading.Event) -> None:
        while not stop.is_set():
            self.rate(self.rng.choice(devs))

    def cut_loop(self, dev: str, cycle: tuple[str, ...], cuts: int, out: dict,
                 at_phases: tuple[str, ...] = ()) -> None:
        """Updates from each build to the next of the cycle, each cut short by a kill -9 at
        a random moment, or (at_phases) once the update reaches each of these phases in turn."""
        rng = random.Random(self.rng.randrange(1 << 30))
        d = self.hall.devices[dev]
        for _ in range(cuts):
            running = json.loads((d.flash / json.loads((d.flash / "slot.json").read_text())["active"]
                                  / "manifest.json").read_text())["content_hash"]
            target = cycle[(cycle.index(running) + 1) % len(cycle)] if running in cycle else cycle[0]
            rid = self.rollout(target, [dev], [])
            if at_phases:
                want = at_phases[out["cuts"] % len(at_phases)]
                wait_until(lambda: phase(d.flash, target) == want, 60, interval=0.01, what=f"phase {want}")
            else:
                # the fetch, the switch, the trial boot or the commit: an update takes from about a
                # second (one module) to several (the GBK font), so the moments spread over both
                time.sleep(rng.uniform(0, 1.5) if rng.random() < 0.4 else rng.uniform(0, 12))
            d.power_cut()
            self.hall.controller.forget(dev)
            out["phases"][phase(d.flash, target)] += 1
            time.sleep(rng.uniform(0, 0.3))
            out["cuts"] += 1
            out["incomplete"] += not complete(d.flash)
            d.start()
            try:
                up = self.hall.controller.link(dev, TRIAL_S + 40).wait(lambda l: l.link_up, TRIAL_S + 40)
            except TimeoutError:
                up = False
            out["unbootable"] += not up
            r = self.hall.api.post(f"/api/v1/rollouts/{rid}/cancel")
            if r.status_code == 200 and up:
                self.rate(dev)


def main(args) -> int:
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="pingjia-ota-"))
    rng = random.Random(args.seed)
    hall = Hall(home / "hall", devices=args.devices, hall="ota", seed=args.seed, device_config={"trial_s": TRIAL_S})
    say(f"building the firmware variants in {home / 'builds'} ...")
    # three good builds, cycled through by the power-cut updates: with two slots, each update
    # finds the build of two updates ago in the slot it stages into, so it fetches what
    # differs (the GBK font is 740 KB: a long fetch to cut into)
    versions = {"good": ("0.2.0", "gb2312"), "good2": ("0.2.1", "gbk"), "good3": ("0.2.2", "gb2312")}
    made = {name: home / "builds" / name for name in (*versions, "import_error", "no_connect")}
    for name, folder in made.items():
        version, charset = versions.get(name, (f"0.2.0-{name}", "gb2312"))
        builds.make(folder, version, "good" if name in versions else name, charset)
    hall.start()
    run = Run(hall, rng)
    devs = sorted(hall.devices)
    out: dict = {"devices": len(devs)}
    try:
        for dev in devs:
            run.rate(dev)
        h = {name: run.upload(folder) for name, folder in made.items()}
        say(f"rolling build 0.2.0 out to {len(devs)} devices (a canary, then 30 %, then all) while citizens rate ...")
        stop = threading.Event()
        rater = threading.Thread(target=run.keep_rating, args=(devs, stop), daemon=True)
        rater.start()
        t0 = time.monotonic()
        good = run.wait(run.rollout(h["good"], shares=[0.3, 1.0]), 900)
        stop.set()
        rater.join(30)
        times = [_s(d["updated_at"]) - _s(d["sent_at"]) for d in good["devices"] if d["state"] == "healthy"]
        out.update(updated=sum(d["state"] == "healthy" for d in good["devices"]), rollout_s=round(
            time.monotonic() - t0, 1), update_s_p50=round(percentile(times, 50), 1) if times else None,
                   update_s_p99=round(percentile(times, 99), 1) if times else None)
        say(f"  {out['updated']} updated in {out['rollout_s']} s; per device p50 {out['update_s_p50']} s")
        rolled_back, halted = 0, True
        for name in ("import_error", "no_connect"):
            say(f"rolling out the broken build {name} ...")
            r = run.wait(run.rollout(h[name]), 300)
            rolled_back += sum(d["state"] == "rolled_back" for d in r["devices"])
            halted = halted and r["state"] == "halted" and all(
                d["state"] == "waiting" for d in r["devices"] if d["stage"] > 0)
            say(f"  {r['state']}: {r.get('why')}")
            hall.api.post(f"/api/v1/rollouts/{r['id']}/cancel")
        out.update(rolled_back=rolled_back, halted=halted)
        cut_devs = devs[:min(len(devs), args.cut_devices)]
        per = -(-args.cuts // len(cut_devs))
        say(f"{per * len(cut_devs)} power cuts during updates on {len(cut_devs)} devices ...")
        cuts: dict = {"cuts": 0, "incomplete": 0, "unbootable": 0, "phases": collections.Counter()}
        threads = [threading.Thread(target=run.cut_loop, args=(dev, (h["good"], h["good2"], h["good3"]), per, cuts))
                   for dev in cut_devs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out.update(cuts, phases=dict(cuts["phases"]))
        for dev in devs:
            run.rate(dev)
        say("waiting for every rating to reach the platform ...")
        hall.wait_drained(run.pressed, 300)
        s = hall.summary(run.pressed)
        out.update(ratings_pressed=s["pressed"], ratings_stored=s["stored"], ratings_lost=s["lost"],
                   ratings_duplicated=s["duplicates"])
    finally:
        hall.stop()
    print(json.dumps(out))
    return 0 if (out.get("ratings_lost") == 0 and out.get("unbootable") == 0 and out.get("incomplete") == 0) else 1


def _s(iso: str | None) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp() if iso else 0.0
