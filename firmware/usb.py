"""A board on a USB serial port, as the technician's tools reach it: MicroPython's raw
REPL through mpremote's transport (pyserial underneath), with what a technician meets in
the field turned into one line that says what to do.

The evaluator's app feeds the hardware watchdog, so a tool that only interrupted it would
be reset under its feet within wdt_ms. `maintenance()` therefore puts a file named
"maintenance" in flash and resets the board: it boots to a REPL with no app and no
watchdog, and stays there across resets until `leave_maintenance()`.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import io
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import serial
from mpremote.transport import TransportError
from mpremote.transport_serial import SerialTransport

from gateway.errors import PingjiaError

MIN_MICROPYTHON = (1, 22)  # the first release with .mpy v6, which the build emits
MPY_ABI = 6
WRITE_CHUNK = 1536  # bytes per raw-REPL write (base64 in the command: about 2 KB)
RESET = "import sys\nif sys.platform == 'esp32':\n import machine\n machine.reset()\nsys.exit(3)\n"


class FieldError(PingjiaError):
    """Something at the board or the hall that a technician can fix; the message says how."""


def _open_problem(port: str, e: OSError) -> FieldError:
    if e.errno == errno.ENOENT or not os.path.exists(port):
        return FieldError(f"no serial port {port}: is the board plugged in? (ls /dev/ttyUSB* /dev/ttyACM*)")
    if e.errno in (errno.EACCES, errno.EPERM):
        return FieldError(f"no permission to open {port}: add yourself to the dialout group "
                          f"(sudo usermod -aG dialout $USER) and log in again")
    return FieldError(f"{port} is busy: close the other program using it (mpremote, a serial console, "
                      f"the Arduino IDE) and try again")


class Board:
    """One board on one port; use as a context manager."""

    def __init__(self, port: str, timeout: float = 10.0):
        self.port = str(port)
        self.timeout = timeout
        self._t: SerialTransport | None = None
        self.in_maintenance = False
        self._connect()

    def _connect(self) -> None:
        try:  # opened once by hand first: mpremote's own error hides why a port failed
            probe = serial.Serial(self.port, 115200, exclusive=True)
            probe.close()
        except (OSError, serial.SerialException) as e:
            raise _open_problem(self.port, e if isinstance(e, OSError) else OSError(getattr(e, "errno", None),
                                                                                       str(e))) from None
        try:
            # a read timeout: mpremote reads a pty (the simulator's ports) blocking, which would
            # wait forever on a port where nothing answers
            self._t = SerialTransport(self.port, 115200, exclusive=True, timeout=1)
        except TransportError as e:
            raise FieldError(f"{self.port} is busy: close the other program using it and try again") from e

    def __enter__(self) -> Board:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._t is not None:
            try:
                if self._t.in_raw_repl:
                    self._t.exit_raw_repl()
                self._t.close()
            except OSError:
                pass  # the cable was pulled: nothing left to close
            self._t = None

    @property
    def t(self) -> SerialTransport:
        assert self._t is not None, "the board's port is closed"
        return self._t

    # -- the raw REPL -----------------------------------------------------------------
    def stop_app(self, timeout: float = 5.0) -> None:
        """Interrupt whatever runs and enter the raw REPL. A tool that died mid-command
        (a pulled cable) can leave the REPL waiting for the rest of it: Ctrl-D ends that."""
        for attempt in range(2):
            try:
                self._enter_raw(timeout)
                return
            except (TransportError, OSError):
                if attempt == 0:
                    self.t.serial.write(b"\x04")
                    time.sleep(1.0)
        raise FieldError(f"no MicroPython answers on {self.port}: flash it first "
                         f"(pingjia device flash {self.port} --micropython IMAGE.bin)")

    def _enter_raw(self, timeout: float) -> None:
        with contextlib.redirect_stdout(io.StringIO()):  # mpremote prints what it got instead
            self.t.enter_raw_repl(soft_reset=False, timeout_overall=timeout)

    def run(self, code: str, timeout: float | None = None) -> str:
        """Run code on the board; its output. A traceback becomes an error naming its last line."""
        try:
            out, err = self.t.exec_raw(code, timeout=timeout or self.timeout)
        except (TransportError, OSError) as e:
            raise FieldError(f"the board on {self.port} stopped answering ({e}): check the cable") from e
        if err:
            last = err.decode(errors="replace").strip().splitlines()[-1:] or ["?"]
            raise FieldError(f"the board failed: {last[0]}")
        return out.decode(errors="replace")

    def json(self, code: str, timeout: float | None = None):
        """Run code whose last line of output is JSON; that value."""
        out = self.run(code, timeout).strip().splitlines()
        if not out:
            raise FieldError("the board printed nothing")
        return json.loads(out[-1])

    def implementation(self) -> dict:
        return self.json("import sys, json\nprint(json.dumps({'platform': sys.platform, "
                         "'version': list(sys.implementation.version[:3]), "
                         "'mpy': getattr(sys.implementation, '_mpy', 0) & 0xff}))")

    def check_micropython(self) -> dict:
        impl = self.implementation()
        problem = unsupported(impl)
        if problem:
            raise FieldError(problem)
        return impl

    # -- files --------------------------------------------------------------------------
    def hashes(self, paths: list[str]) -> dict[str, str | None]:
        """The SHA-256 of many files in one round trip."""
        return self.json(
            "import hashlib, binascii, json\nb = bytearray(512)\nout = {}\n"
            f"for p in {paths!r}:\n h = hashlib.sha256()\n try:\n  with open(p, 'rb') as f:\n   while True:\n"
            "    n = f.readinto(b)\n    if not n:\n     break\n    h.update(b if n == 512 else b[:n])\n"
            "  out[p] = binascii.hexlify(h.digest()).decode()\n except OSError:\n  out[p] = None\n"
            "print(json.dumps(out))", timeout=max(self.timeout, 2.0 * len(paths)))

    def write(self, path: str, data: bytes, progress: Callable[[int], None] | None = None) -> None:
        """Write a file whole or not at all: into path.part, then renamed over path. A
        pulled cable leaves at most a .part, which the next write starts over."""
        part = path + ".part"
        self.run(f"import binascii\n_f = open({part!r}, 'wb')")
        for i in range(0, len(data), WRITE_CHUNK):
            chunk = data[i:i + WRITE_CHUNK]
            self.run(f"_f.write(binascii.a2b_base64({base64.b64encode(chunk).decode()!r}))")
            if progress:
                progress(len(chunk))
        self.run(f"_f.close()\nimport os\nos.rename({part!r}, {path!r})")

    def read(self, path: str) -> bytes | None:
        out = self.json(f"import binascii, json\ntry:\n d = binascii.b2a_base64(open({path!r}, 'rb').read())"
                        f".decode()\nexcept OSError:\n d = None\nprint(json.dumps(d))")
        return None if out is None else base64.b64decode(out)

    def listdir(self, path: str = "") -> list[str]:
        return self.json(f"import os, json\ntry:\n r = os.listdir({path!r})\nexcept OSError:\n r = []\n"
                         f"print(json.dumps(r))")

    def remove(self, *paths: str) -> None:
        self.run(f"import os\nfor p in {list(paths)!r}:\n try:\n  os.remove(p)\n except OSError:\n  pass")

    def mkdir(self, path: str) -> None:
        self.run(f"import os\ntry:\n os.mkdir({path!r})\nexcept OSError:\n pass")

    # -- resets ---------------------------------------------------------------------------
    def reset(self) -> None:
        """A hard reset, as the board's reset button (machine.reset on the ESP32); the
        USB-serial chip stays, so the port stays open."""
        try:
            self.t.exec_raw_no_follow(RESET)
        except (TransportError, OSError):
            pass  # it reset before it could answer
        self.t.in_raw_repl = False
        time.sleep(0.3)

    def wait_repl(self, timeout: float = 20.0) -> None:
        """After a reset: the raw REPL again, once the board has booted."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._enter_raw(2)
                return
            except (TransportError, OSError):
                if time.monotonic() > deadline:
                    raise FieldError(f"the board on {self.port} did not come back after a reset: "
                                     f"press its reset button and try again") from None

    def maintenance(self) -> None:
        """Stop the app for good: the board boots to its REPL, with no app and no watchdog."""
        self.stop_app()
        self.run("open('maintenance', 'w').close()")
        self.in_maintenance = True
        self.reset()
        self.wait_repl()

    def leave_maintenance(self, reset: bool = True) -> None:
        self.remove("maintenance")
        self.in_maintenance = False
        if reset:
            self.reset()

    @contextlib.contextmanager
    def maintained(self, reset: bool = True):
        """In maintenance for the block; the app runs again after it, even after an error
        (unless the block left maintenance itself)."""
        self.maintenance()
        try:
            yield self
        finally:
            if self.in_maintenance:
                try:
                    self.leave_maintenance(reset)
                except FieldError:
                    pass  # the cable is gone: the next tool run finds the board in maintenance

    def read_console(self, seconds: float) -> bytes:
        """What the running app prints on the console for a while (after a reset)."""
        t = self.t.serial
        end, out = time.monotonic() + seconds, b""
        while time.monotonic() < end:
            n = t.in_waiting
            out += t.read(n) if n else b""
            if not n:
                time.sleep(0.05)
        return out


def unsupported(impl: dict) -> str | None:
    """Why the board's MicroPython cannot run the build, if it cannot."""
    if tuple(impl["version"][:2]) >= MIN_MICROPYTHON and impl["mpy"] == MPY_ABI:
        return None
    have = ".".join(str(x) for x in impl["version"])
    need = ".".join(str(x) for x in MIN_MICROPYTHON)
    return (f"MicroPython {have} on the board (.mpy v{impl['mpy']}); the firmware needs {need} or newer "
            f"(.mpy v{MPY_ABI}): flash a supported image (pingjia device flash)")


def local_manifest(build: Path) -> dict:
    path = Path(build) / "manifest.json"
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise FieldError(f"no firmware build in {build}: run `pingjia firmware build --out {build}`") from e
    if "files" not in m or "boot" not in m:
        raise FieldError(f"{build} is a build of an older layout: build it again (pingjia firmware build)")
    return m
