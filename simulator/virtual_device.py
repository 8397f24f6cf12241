"""Virtual evaluators: the real device code running under the MicroPython unix port.

Each device is one `micropython` process whose current directory is its flash (a data
folder holding config.json, the outbox and counters). Buttons and events travel over the
controller's TCP socket (board_unix.py speaks the other end).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import firmware
from firmware import font, micropython_binary, voice
from firmware.build import HARDWARE_DIR

from .serial_port import SOFT_RESET_RAW, SerialPort, take_console

LEVEL_BUTTON = {"very_satisfied": 1, "satisfied": 2, "basically_satisfied": 3,
                "dissatisfied": 4, "very_dissatisfied": 5}
REASON_BUTTON = {"attitude": 1, "slow": 2, "materials": 3, "trips": 4, "commitment": 5}


EXIT_REBOOT = 3  # board_unix.py: the device asked for a reset (command, watchdog)


def board_settings(board: str = "five-button") -> dict:
    """The reference board's button (or touch) timing, which the unix board takes from its config."""
    hw = json.loads((HARDWARE_DIR / f"{board}.json").read_text())
    if board == "tablet":
        return {"debounce_ms": 0, "min_gap_ms": hw["touch"]["min_gap_ms"]}
    return {"debounce_ms": hw["debounce_ms"], "min_gap_ms": hw["min_gap_ms"]}


class VirtualDevice:
    """One evaluator. Its flash gets the firmware and the provisioned config as
    `pingjia device setup` leaves them on a board (the boot files in its root, the rest
    with the display font and a manifest in slot.a; firmware/device/slots.py); it boots
    without the maintenance pause (nobody is at a serial console) unless the config asks
    for one. Without a config it is a blank board: MicroPython and nothing else, for the
    technician's tools to set up.

    The hardware watchdog is the simulator's, outside the device program as on the ESP32:
    a device that stops feeding it (board_unix.py) is reset, whatever its code is doing.
    `wifi` is the hall's Wi-Fi, (SSID, password), that a config naming one must match.

    With `port` (a path), the device is also reachable as a serial port there, with its
    REPL behind it as on a USB-connected ESP32: the REPL stays after the app ends or is
    interrupted, and a soft reset (Ctrl-D) boots the app again, or only the raw REPL when
    it came from there, as MicroPython's ports do."""

    def __init__(self, flash: Path, config: dict | None, heap: str | None = None, code: Path | None = None,
                 port: Path | None = None, wifi: tuple[str, str] | None = None):
        self.flash = Path(flash)
        self.code = Path(code or firmware.DEVICE_DIR)  # source, or a `pingjia firmware build`
        self.model = (config or {}).get("model", "five-button")
        self.config = {"maintenance_s": 0, **board_settings(self.model), **config} if config is not None else None
        self.dev = config["dev"] if config else self.flash.name
        # the ESP32's RAM; the tablet's ESP32-S3 has 8 MB of PSRAM, of which its heap takes 2
        self.heap = heap or ("2m" if self.model == "tablet" else "256k")
        self.wifi = wifi
        self.proc: subprocess.Popen | None = None
        self.boots = 0
        self.watchdog_resets = 0
        self.crashes = 0  # the interpreter died of a signal (a panic on an ESP32): booted again
        self._reset_by_watchdog: set[subprocess.Popen] = set()
        self.port = SerialPort(port) if port else None
        self._powered = False
        self._closed = False
        self._lock = threading.RLock()  # power and resets: one program on the flash at a time
        self._wd: threading.Thread | None = None
        self.flash.mkdir(parents=True, exist_ok=True)
        if self.config is not None:
            install(self.flash, self.code, self.model)
            cfg = self.flash / "config.json"  # the device's key and password: its owner's only
            cfg.touch(mode=0o600)
            cfg.chmod(0o600)
            cfg.write_text(json.dumps(self.config))

    def start(self) -> None:
        with self._lock:
            self._powered = True
            self._boot()
        if self._wd is None:
            self._wd = threading.Thread(target=self._watchdog, daemon=True)
            self._wd.start()

    def _reboot(self, proc: subprocess.Popen, raw_repl: bool = False) -> None:
        """Boot again after `proc` ended, if the power is still on and nothing else booted
        it meanwhile: under the lock, so that a power cut and a reset racing each other
        never leave two programs running on one flash."""
        with self._lock:
            if self._powered and self.proc is proc:
                self._boot(raw_repl)

    def _boot(self, raw_repl: bool = False) -> None:
        argv = [micropython_binary(), "-X", f"heapsize={self.heap}"]
        (self.flash / "wdt").unlink(missing_ok=True)  # a reset stops the watchdog
        env = {**os.environ, "PINGJIA_SIM_WIFI": ":".join(self.wifi)} if self.wifi else None
        if self.port is None:
            log = open(self.flash / "console.log", "ab")
            self.proc = proc = subprocess.Popen(
                argv + ["main.py"], cwd=self.flash, stdin=subprocess.DEVNULL, env=env,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            log.close()
        else:
            # Ctrl-A puts a freshly started REPL into raw mode, where a raw soft reset left it
            console = self.port.console(preamble=b"\x01" if raw_repl else b"")
            self.proc = proc = subprocess.Popen(
                argv + ([] if raw_repl else ["-i", "main.py"]), cwd=self.flash, env=env,
                stdin=console, stdout=console, stderr=console, preexec_fn=take_console)
            os.close(console)
        self.boots += 1
        threading.Thread(target=self._reset_on_request, args=(proc,), daemon=True).start()

    def _watchdog(self) -> None:
        wdt = self.flash / "wdt"
        while not self._closed:
            time.sleep(0.25)
            try:
                timeout_s = int(wdt.read_text() or 0) / 1000
                fed = wdt.stat().st_mtime
            except (OSError, ValueError):
                continue  # not started this boot (or being rewritten)
            proc = self.proc
            if timeout_s and time.time() - fed > timeout_s and proc and self._powered:
                with self._lock:
                    if not self._powered or self.proc is not proc:
                        continue
                    self._reset_by_watchdog.add(proc)  # its end is this reset, not a crash
                    proc.kill()
                    proc.wait()
                    (self.flash / "reset.cause").write_text("watchdog")
                    self.watchdog_resets += 1
                    self._boot()

    def _reset_on_request(self, proc: subprocess.Popen) -> None:
        # A real ESP32 restarts itself on machine.reset() or its watchdog; here the
        # process exits and the simulator boots it again, as long as power is on.
        code = proc.wait()
        if not (self._powered and self.proc is proc):
            return
        if code == EXIT_REBOOT:
            time.sleep(0.05)
            self._reboot(proc)
        elif code < 0 and not self._watchdog_reset(proc):
            # the interpreter itself crashed (the unix port can, rarely, under a full heap):
            # an ESP32's panic handler resets the chip, so the device boots again, and says why
            self.crashes += 1
            (self.flash / "reset.cause").write_text("panic")
            time.sleep(0.05)
            self._reboot(proc)
        elif self.port is not None and code >= 0:
            # Ctrl-D at the REPL (or sys.exit): the unix port exits where a board soft-resets
            self.port.wait_drained()
            raw = self.port.tail.endswith(SOFT_RESET_RAW)
            self.port.write(b"MPY: soft reboot\r\n")
            self._reboot(proc, raw_repl=raw)

    def _watchdog_reset(self, proc: subprocess.Popen) -> bool:
        if proc in self._reset_by_watchdog:
            self._reset_by_watchdog.discard(proc)
            return True
        return False

    def power_cut(self) -> None:
        """kill -9: what a pulled plug does to the firmware."""
        with self._lock:
            self._powered = False
            if self.proc and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()

    def stop(self, wait: bool = True) -> None:
        """Shut the device down (SIGTERM, then the plug after 3 s); without wait, only ask."""
        self._powered = False
        self._closed = wait
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if not wait:
                return
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.power_cut()
        if self.port is not None:
            self.port.close()


def install(flash: Path, code: Path, model: str = "five-button") -> None:
    """Put a firmware (the source, or a `pingjia firmware build`) into a device's flash as
    `pingjia device install` does: the boot files in the root, everything else with the
    font and the manifest in slot.a, slot.json naming it. Modules left in the root by an
    older firmware go: they would take room, or be imported by mistake."""
    from firmware.build import BOOT, firmware_version, manifest

    slot = flash / "slot.a"
    shutil.rmtree(slot, ignore_errors=True)
    slot.mkdir(parents=True)
    def data(name: str) -> bool:  # what a build carries beside its modules
        return name in font.FILES.values() or name.startswith("voice_") and name.endswith(".pcm")
    files = [p for p in code.iterdir() if p.suffix in (".py", ".mpy") or data(p.name)]
    for old in flash.iterdir():
        if old.suffix in (".py", ".mpy") and old.name not in BOOT or data(old.name):
            old.unlink()
    for p in files:
        shutil.copyfile(p, (flash if p.name in BOOT else slot) / p.name)
    font_file = slot / font.FILES[model]
    if not any((slot / n).exists() for n in font.FILES.values()):
        font.write(font_file, model=model)
    if not any(slot.glob("voice_*.pcm")):
        files += voice.write(slot)
    if (code / "manifest.json").exists():
        shutil.copyfile(code / "manifest.json", slot / "manifest.json")
    else:
        paths = [flash / p.name if p.name in BOOT else slot / p.name for p in files] + [font_file]
        m = manifest(sorted(set(paths)), firmware_version(), "source", model=model)
        (slot / "manifest.json").write_text(json.dumps(m))
    (flash / "slot.json").write_text(json.dumps({"active": "slot.a"}))


class DeviceLink:
    """What the controller knows of one connected device, updated by its reader thread."""

    def __init__(self, dev: str, sock: socket.socket):
        self.dev = dev
        self.sock = sock
        self.cond = threading.Condition()
        self.session_case: str | None = None
        self.link_up = False
        self.confirmed: list[dict] = []
        self.last_press_at = 0.0
        self.acked: set[int] = set()
        self.display: list[str] = []
        self.targets: dict[str, tuple[int, int, int, int]] = {}  # the tablet's: what can be tapped where
        self.framebuffer = b""
        self.boot: dict = {}  # the firmware's boot event: boot count, reset cause
        self.heap: dict = {}  # the last heap report (board_unix.py, heap_watch_ms)
        self.seen: Counter = Counter()  # events by name
        self.voices: list[tuple[str, str, float]] = []  # ("voice"|"voice_done", clip, when): what it said

    def update(self, ev: dict) -> None:
        with self.cond:
            kind = ev.get("ev")
            self.seen[kind] += 1
            if kind == "session":
                self.session_case = ev.get("case") or None
            elif kind == "link":
                self.link_up = bool(ev.get("up"))
            elif kind == "confirmed":
                self.confirmed.append(ev)
            elif kind == "acked" and isinstance(ev.get("seq"), int):
                self.acked.add(ev["seq"])
            elif kind == "boot":
                self.boot = ev
            elif kind == "heap":
                self.heap = ev
            elif kind == "display":
                self.display = ev.get("lines") or []
                self.targets = {t[0]: tuple(t[1:]) for t in ev.get("targets") or []}
            elif kind in ("voice", "voice_done") and len(self.voices) < 1000:
                self.voices.append((kind, str(ev.get("clip")), time.time()))
            elif kind == "screen":  # the tablet's 300 KB come as a file in its flash
                self.framebuffer = (Path(ev["file"]).read_bytes() if isinstance(ev.get("file"), str)
                                    else base64.b64decode(ev.get("fb") or ""))
            self.cond.notify_all()

    def wait(self, predicate, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: predicate(self), timeout)

    def send(self, msg: dict) -> None:
        self.sock.sendall(json.dumps(msg).encode() + b"\n")

    def press(self, button: int) -> None:
        self.send({"button": button})

    def tap(self, button: int, done, timeout: float) -> bool:
        """Press until done(link) holds: a press inside the device's minimum gap is
        ignored (the device says so), and a citizen would press again."""
        deadline = time.monotonic() + timeout
        while True:
            ignored = self.seen["ignored"]
            self.last_press_at = time.time()  # the press that counts is the last one
            self.press(button)
            left = deadline - time.monotonic()
            if not self.wait(lambda l: done(l) or l.seen["ignored"] > ignored, max(left, 0)):
                return False
            if done(self):
                return True
            time.sleep(0.1)

    def touch(self, name: str, timeout: float = 5.0) -> None:
        """Tap the middle of the tablet's target `name` once its screen shows it."""
        with self.cond:
            if not self.cond.wait_for(lambda: name in self.targets, timeout):
                raise LookupError(f"{self.dev} shows no {name!r}: {sorted(self.targets)}")
            x, y, w, h = self.targets[name]
        self.send({"touch": [x + w // 2, y + h // 2]})

    def choose(self, name: str, done, timeout: float) -> bool:
        """Tap target `name` until done(link) holds, as tap() presses."""
        deadline = time.monotonic() + timeout
        while True:
            ignored = self.seen["ignored"]
            self.last_press_at = time.time()
            self.touch(name)
            if not self.wait(lambda l: done(l) or l.seen["ignored"] > ignored, max(deadline - time.monotonic(), 0)):
                return False
            if done(self):
                return True
            time.sleep(0.1)

    def screen(self, timeout: float = 5.0) -> bytes:
        """The device's framebuffer: the five-button's 128x64 MONO_VLSB, the tablet's
        480x320 RGB565 (big-endian, as the panel takes it)."""
        n = self.seen["screen"]
        self.send({"screen": True})
        if not self.wait(lambda l: l.seen["screen"] > n, timeout):
            raise TimeoutError(f"{self.dev} sent no screen")
        return self.framebuffer


class Controller:
    """The simulator's end of the devices' control sockets."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.address = "127.0.0.1:%d" % self.server.getsockname()[1]
        self.links: dict[str, DeviceLink] = {}
        self.cond = threading.Condition()
        self._closed = False
        threading.Thread(target=self._accept, name="controller", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                sock, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        f = sock.makefile("rb")
        link = None
        try:
            for line in f:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if link is None:
                    if ev.get("ev") != "hello":
                        continue
                    link = DeviceLink(ev.get("dev"), sock)
                    with self.cond:
                        self.links[link.dev] = link  # a rebooted device replaces its old link
                        self.cond.notify_all()
                    continue
                link.update(ev)
        except OSError:
            pass
        finally:
            if link is not None:
                link.update({"ev": "link", "up": False})

    def link(self, dev: str, timeout: float = 10.0) -> DeviceLink:
        with self.cond:
            if not self.cond.wait_for(lambda: dev in self.links, timeout):
                raise TimeoutError(f"device {dev} did not connect to the controller")
            return self.links[dev]

    def forget(self, dev: str) -> None:
        with self.cond:
            self.links.pop(dev, None)

    def close(self) -> None:
        self._closed = True
        self.server.close()
