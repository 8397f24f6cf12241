"""A whole hall on one machine, every part real and in its own process: Mosquitto, the
gateway, the platform stand-in, virtual evaluators under MicroPython, and the business
stand-in driving sessions and cases. The demo and the end-to-end tests both use it.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from gateway.auth import account_token
from gateway.broker import Broker
from gateway.config import Config
from gateway.data import devices, open_db, open_readonly, ratings, rejections
from gateway.forwarder import platform_record
from gateway.protocol import BAD_LEVELS, REASONS
from gateway.province import Profile
from gateway.registry import Registry

from . import releases
from .business import STAFF, Business, portrait
from .virtual_device import LEVEL_BUTTON, REASON_BUTTON, Controller, VirtualDevice

# a plausible hall: most citizens are satisfied, a few are not
LEVEL_WEIGHTS = {"very_satisfied": 70, "satisfied": 18, "basically_satisfied": 6,
                 "dissatisfied": 4, "very_dissatisfied": 2}


_ports = random.Random()


def free_port() -> int:
    """A port free to listen on, below the kernel's range for outgoing connections
    (32768 up on Linux): a port the kernel hands out as free is also one any process's
    next outgoing connection may take before the listener binds it."""
    low, high = 20000, 32768
    try:
        low_ephemeral = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
        high = min(high, low_ephemeral)
    except (OSError, ValueError, IndexError):
        pass
    for _ in range(50 if high > low else 0):
        port = _ports.randrange(low, high)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def let_broker_through(home: Path) -> None:
    """The broker runs as its own user (never root): make the folders down to a temporary
    home passable for it (o+x lets it through without listing them)."""
    home.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        for d in (home, *home.resolve().parents):
            mode = d.stat().st_mode
            if d.owner() == "root" and not mode & 0o001:
                d.chmod(mode | 0o001)


def local_config(home: Path, hall: str, **settings) -> Config:
    """Settings for a hall on this machine: free ports for the devices' TLS listener, the
    gateway's loopback listener and the API."""
    home = Path(home)
    let_broker_through(home)
    return Config(home=home, hall=hall, broker_port=free_port(), local_port=free_port(), api_port=free_port(),
                  **settings)


def wait_until(check, timeout: float, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
            if value:
                return value
        except (httpx.HTTPError, OSError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(interval)


def start_gateway(cfg: Config, wait: bool = True, release: Path | None = None,
                  env: dict | None = None) -> subprocess.Popen:
    """`pingjia gateway run` in its own process (so it can be kill -9'ed), logging to
    home/gateway.log (what escapes logging, to gateway.out); returns once it is connected
    to its broker. release: the folder of an earlier release to run instead (releases.py);
    env: variables added to its environment."""
    log = open(cfg.home / "gateway.out", "ab")
    proc = subprocess.Popen([*releases.command(release), "gateway", "run", "--home", str(cfg.home),
                             "--log-file", str(cfg.home / "gateway.log")],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, **(env or {})})
    log.close()
    if wait:
        wait_gateway(cfg)
    return proc


def wait_gateway(cfg: Config) -> None:
    wait_until(lambda: httpx.get(f"{cfg.api_url}/api/v1/health", timeout=1).json()["broker_connected"],
               30, what="the gateway")


def start_platform_sim(cfg: Config, port: int, *options: str, wait: bool = True) -> subprocess.Popen:
    """`pingjia platform-sim` speaking the gateway's profile and credentials, logging to
    home/platform.log; returns once it answers."""
    log = open(cfg.home / "platform.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "platform-sim", "--port", str(port), "--profile", cfg.platform_profile,
         "--app-key", cfg.platform_app_key, *options],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "PINGJIA_PLATFORM_SECRET": cfg.platform_app_secret})  # not in argv: `ps` shows that
    log.close()
    if wait:
        wait_platform(port)
    return proc


@contextlib.contextmanager
def fleet_hall(home: Path, hall: str, pairs: list[tuple[str, str]], prepare=None):
    """A hall for protocol-level devices (load.py): its settings saved, the (device,
    window) pairs registered, the broker and the gateway running; yields (cfg, the devices'
    credentials, the gateway's process). prepare(cfg, db) runs on the database first (a
    bench fills it)."""
    cfg = local_config(home, hall, platform_url="")
    cfg.save()
    db = open_db(cfg.db_path)
    if prepare:
        prepare(cfg, db)
    creds = Registry(cfg, db).add_many(pairs)
    db.conn.close()
    broker = Broker(cfg)
    broker.start()
    try:
        gateway = start_gateway(cfg)
        try:
            yield cfg, creds, gateway
        finally:
            gateway.terminate()
            gateway.wait(20)
    finally:
        broker.stop()


def wait_platform(port: int) -> None:
    wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200,
               20, what="the platform stand-in")


MODELS = ("five-button", "tablet", "mixed")
TABLET_PARTS = ("item", "staff", "channel", "attitude", "efficiency")  # what the tablet offers (tablet.py)


class Hall:
    def __init__(self, home: Path | str, devices: int = 4, hall: str = "demo", seed: int | None = None,
                 profile: str = "national", device_heap: str | None = None, device_config: dict | None = None,
                 device_code: Path | None = None, serial: bool = False, release: Path | None = None,
                 model: str = "five-button"):
        self.home = Path(home)
        self.release = release  # an earlier release's folder: its gateway runs the hall (releases.py)
        self.gateway_env: dict = {}  # added to the gateway's environment
        self.serial = serial  # each device also a serial port, under home/ports
        self.device_heap = device_heap  # None: each model's own (virtual_device.py)
        if model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}")
        self.model = model  # "mixed": every other window a tablet
        self.device_code = device_code  # a built firmware (.mpy) instead of the source
        self.device_config = device_config or {}  # e.g. a shorter min_gap_ms for a benchmark
        self.n_devices = devices
        self.rng = random.Random(seed)
        self.cfg = local_config(self.home, hall, platform_profile=profile,
                          platform_settings={"area_code": "440304", "dept_code": "11440304MB2C00001X"})
        self.platform_faults: list[str] = []  # extra platform-sim options, e.g. ["--error-rate", "0.3"]
        self.platform_port = free_port()
        self.profile = Profile.load(profile)
        self.cfg.platform_url = f"http://127.0.0.1:{self.platform_port}"
        self.broker = Broker(self.cfg)
        self.gateway: subprocess.Popen | None = None
        self.platform: subprocess.Popen | None = None
        self.controller: Controller | None = None
        self.devices: dict[str, VirtualDevice] = {}
        self.windows: dict[str, str] = {}  # device -> window
        self.credentials: dict[str, dict] = {}  # device -> key and broker password
        self.staff: dict[str, tuple[str, str]] = {}  # window -> (staff ID, name)
        self.business: Business | None = None
        self.token = ""  # an admin's API token, made at start
        self.api: httpx.Client | None = None  # the gateway's API with that token
        self.business_token = ""
        self.gateway_kills = 0
        self._case_lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> Hall:
        self.home.mkdir(parents=True, exist_ok=True)
        self.controller = Controller()
        pairs = [(f"pj-{i:04d}", f"W{i:02d}") for i in range(1, self.n_devices + 1)]
        if self.release:  # the release's own code makes its settings and its database
            made = releases.setup(self.release, self.cfg, pairs)
            creds, self.token, self.business_token = made["creds"], made["token"], made["business"]
            db = open_readonly(self.cfg.db_path)
        else:
            self.cfg.save()
            db = open_db(self.cfg.db_path)
            reg = Registry(self.cfg, db)
            tablets = pairs if self.model == "tablet" else pairs[1::2] if self.model == "mixed" else []
            creds = sorted(reg.add_many([p for p in pairs if p not in tablets])
                           + (reg.add_many(tablets, "tablet") if tablets else []), key=lambda c: c["dev"])
            self.token = account_token(db, "hall-admin", "admin", "the simulator's admin calls")
            self.business_token = account_token(db, "business", "business", "the hall business system")
        for c in creds:
            self.credentials[c["dev"]] = c
            self.windows[c["dev"]] = c["window"]
        self.broker.write_config(devices.password_hashes(db))
        db.conn.close()
        self.broker.start()
        # the two Python processes start side by side: most of their start is imports
        self.platform = start_platform_sim(self.cfg, self.platform_port, *self.platform_faults, wait=False)
        self.gateway = start_gateway(self.cfg, wait=False, release=self.release, env=self.gateway_env)
        wait_platform(self.platform_port)
        wait_gateway(self.cfg)
        self.api = httpx.Client(base_url=self.cfg.api_url, headers={"Authorization": f"Bearer {self.token}"},
                                timeout=30)
        self.business = Business(self.cfg.api_url, self.business_token, seed=self.rng.randrange(1 << 30))
        for i, window in enumerate(sorted(set(self.windows.values()))):
            staff = STAFF[i % len(STAFF)]
            staff = (f"{staff[0]}{i // len(STAFF) or ''}", staff[1])
            self.business.sign_in(window, *staff)
            self.staff[window] = staff
            if self.model != "five-button":  # the tablets show the staff member's photo
                self.business.put_photo(staff[0], portrait(staff[0]))
        for c in self.credentials.values():
            d = VirtualDevice(self.home / "devices" / c["dev"],
                              {**c, **self.device_config, "ctl": self.controller.address}, heap=self.device_heap,
                              code=self.device_code, port=self.home / "ports" / c["dev"] if self.serial else None)
            d.start()
            self.devices[c["dev"]] = d
        for dev in self.devices:
            self.controller.link(dev, timeout=20).wait(lambda l: l.link_up, 20)
        return self

    def start_gateway(self) -> None:
        self.gateway = start_gateway(self.cfg, release=self.release, env=self.gateway_env)

    def kill_gateway(self) -> None:
        """kill -9: no clean shutdown, no chance to finish a write or an ack."""
        self.gateway.kill()
        self.gateway.wait()
        self.gateway_kills += 1

    def power_cycle(self, dev: str, timeout: float = 20.0) -> None:
        """Pull the device's plug (kill -9) and plug it in again; returns once it is back online."""
        self.devices[dev].power_cut()
        self.controller.forget(dev)
        self.devices[dev].start()
        if not self.controller.link(dev, timeout).wait(lambda l: l.link_up, timeout):
            raise TimeoutError(f"{dev} did not come back online")

    def stop(self) -> None:
        # everything is told at once, then waited for: the shutdowns overlap
        procs = [p for p in (self.gateway, self.platform) if p is not None and p.poll() is None]
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for d in self.devices.values():
            d.stop(wait=False)
        for d in self.devices.values():
            d.stop()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.broker.stop()
        if self.controller:
            self.controller.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- citizens ----------------------------------------------------------------------
    def random_level(self) -> tuple[str, str | None]:
        level = self.rng.choices(list(LEVEL_WEIGHTS), weights=list(LEVEL_WEIGHTS.values()))[0]
        reason = self.rng.choice([r for r in REASONS if r != "none"]) if level in BAD_LEVELS else None
        return level, reason

    def new_case(self, dev: str, timeout: float = 30.0) -> str:
        """The business system completes a case at the device's window; returns its serial
        once the device shows it. Retries while the gateway is away."""
        window = self.windows[dev]
        with self._case_lock:  # one Business (one httpx client and RNG) shared by threads
            case = wait_until(lambda: self.business.complete_case(window)["serial"], timeout,
                              interval=0.2, what=f"the gateway to take a case for {window}")
        link = self.controller.link(dev)
        if not link.wait(lambda l: l.session_case == case, timeout):
            raise TimeoutError(f"{dev} never showed case {case}")
        return case

    def press(self, dev: str, level: str, reason: str | None = None, timeout: float = 10.0,
              parts: dict[str, str] | None = None, tags: list[str] | None = None) -> dict:
        """A citizen rates what the device shows; returns the rating once it is confirmed.
        On a tablet, also the itemised parts ({part: level}) and more reasons (tags)."""
        link = self.controller.link(dev)
        n, asked = len(link.confirmed), link.seen["reason"]
        confirmed = lambda l: len(l.confirmed) > n  # noqa: E731
        if self.devices[dev].model == "tablet":
            ok = self._touch_rating(link, level, [reason] if reason else tags or [], parts or {}, confirmed, timeout)
        elif level in BAD_LEVELS:
            assert reason, "a bad review needs its reason"
            ok = (link.tap(LEVEL_BUTTON[level], lambda l: l.seen["reason"] > asked, timeout)
                  and link.tap(REASON_BUTTON[reason], confirmed, timeout))
        else:
            ok = link.tap(LEVEL_BUTTON[level], confirmed, timeout)
        if not ok:
            raise TimeoutError(f"{dev} did not confirm a press")
        ev = link.confirmed[n]
        window = self.windows[dev]
        return {"id": f"{dev}:{ev['seq']}", "dev": dev, "case_no": ev["case"], "window": window,
                "staff_id": self.staff[window][0], "level": ev["level"], "parts": ev.get("parts") or {},
                "confirm_ms": ev["ms"],  # press to thanks screen, as the firmware timed it
                "pressed_at": link.last_press_at}  # the press that confirmed it (for a bad review, its reason)

    @staticmethod
    def _touch_rating(link, level: str, tags: list[str], parts: dict[str, str], confirmed, timeout: float) -> bool:
        """A tablet: the level's tile, the reasons' chips, the parts' levels, then submit."""
        def shows(name):
            return lambda l: name in l.targets

        details = link.seen["details"]
        if not link.choose(f"level:{level}", lambda l: l.seen["details"] > details, timeout):
            return False
        for tag in tags:
            if not link.choose(f"tag:{tag}", lambda l, t=tag: t in (l.display[1:2] or [""])[0].split(","), timeout):
                return False
        if parts:
            if level in BAD_LEVELS and not link.choose("parts", shows("part:item:satisfied"), timeout):
                return False
            for code, lv in parts.items():  # done once the screen shows the part chosen (a tap may be ignored)
                chosen = f"{code}:{LEVEL_BUTTON[lv]}"
                if not link.choose(f"part:{code}:{lv}", lambda l, c=chosen: c in (l.display[1:2] or [""])[0], timeout):
                    return False
        return link.wait(shows("submit"), timeout) and link.choose("submit", confirmed, timeout)

    def hand_over(self, window: str, staff: tuple[str, str]) -> None:
        """A shift change at a window: one staff member signs out, the next signs in."""
        with self._case_lock:
            self.business.sign_out(window)
            if self.model != "five-button":
                self.business.put_photo(staff[0], portrait(staff[0]))
            self.business.sign_in(window, *staff)
        self.staff[window] = staff

    def random_parts(self, level: str) -> dict[str, str]:
        """Half the tablet's citizens also rate one to three parts, near their overall level."""
        if self.rng.random() < 0.5:
            return {}
        levels = list(LEVEL_BUTTON)
        i = levels.index(level)
        return {p: levels[min(4, max(0, i + self.rng.choice((-1, 0, 0, 1))))]
                for p in self.rng.sample(TABLET_PARTS, self.rng.randint(1, 3))}

    def rate(self, dev: str) -> dict:
        self.new_case(dev)
        level, reason = self.random_level()
        if self.devices[dev].model == "tablet":
            return self.press(dev, level, reason, parts=self.random_parts(level))
        return self.press(dev, level, reason)

    def keep_rating(self, stop: threading.Event, pressed: list, errors: list) -> list[threading.Thread]:
        """Every device rates case after case until `stop`, into `pressed`, riding out the
        gateway's absence (a restart, an upgrade): only a press unconfirmed while the
        gateway ran is an error."""
        def one(dev):
            while not stop.is_set():
                try:
                    pressed.append(self.rate(dev))
                except TimeoutError:
                    if not stop.is_set() and self.gateway is not None and self.gateway.poll() is None:
                        errors.append(f"{dev}: no press confirmed while the gateway ran")
        threads = [threading.Thread(target=one, args=(d,), daemon=True) for d in self.devices]
        for t in threads:
            t.start()
        return threads

    # -- accounting --------------------------------------------------------------------
    def platform_records(self) -> dict[str, dict]:
        r = httpx.get(f"{self.cfg.platform_url}/sim/records", timeout=30)
        r.raise_for_status()
        id_field = self.profile.id_field
        return {rec[id_field]: rec for rec in r.json()["records"]}

    def _read(self, query):
        """query(db) on the gateway's database, opened for this read alone."""
        db = open_db(self.cfg.db_path)
        try:
            return query(db)
        finally:
            db.conn.close()

    def work_orders(self) -> list[dict]:
        """Every work order, through the API, page by page."""
        out: list[dict] = []
        while page := self.api.get("/api/v1/work-orders", params={"limit": 1000, "offset": len(out)}).json():
            out += page
        return out

    def stored_rows(self) -> dict[str, dict]:
        return self._read(ratings.by_id)

    def rejection_counts(self) -> dict[str, int]:
        return self._read(rejections.counts)

    def wait_drained(self, pressed: list[dict], timeout: float = 120.0) -> None:
        want = {p["id"] for p in pressed}
        try:
            wait_until(lambda: want <= set(self.platform_records()), timeout, interval=0.5,
                       what="every rating to reach the platform")
        except TimeoutError:
            pass  # the summary says what is missing

    def summary(self, pressed: list[dict]) -> dict:
        """Count what happened to each pressed rating. A rating counts as forwarded when the
        gateway tagged it with the window, staff ID and case the citizen saw, and the
        platform holds exactly the record the profile makes of it."""
        want = {p["id"]: p for p in pressed}
        stored = self.stored_rows()
        at_platform = self.platform_records()
        forwarded = mistagged = itemised = 0
        for rid, rec in at_platform.items():
            p, row = want.get(rid), stored.get(rid)
            if p is None or row is None:
                continue
            expected = self.profile.record(platform_record(row), self.cfg.platform_settings, self.cfg.timezone)
            if all(row[k] == p[k] for k in ("window", "staff_id", "case_no", "level")) and rec == expected \
                    and json.loads(row.get("parts") or "{}") == p.get("parts", {}):
                forwarded += 1
                itemised += bool(p.get("parts"))
            else:
                mistagged += 1
        # One press, one platform record: anything beyond that is a duplicate.
        return {"pressed": len(want), "stored": len(set(stored) & set(want)), "forwarded": forwarded,
                "duplicates": len(at_platform) - forwarded - mistagged + len(set(stored) - set(want)),
                "lost": len(set(want) - set(at_platform)), "mistagged": mistagged,
                "itemised": itemised}  # forwarded with the tablet's parts as the citizen chose them
