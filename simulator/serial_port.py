"""A virtual evaluator's USB serial port: a pseudo-terminal with the device's REPL behind it.

A real evaluator's USB-serial chip stays on the bus while the ESP32 behind it resets, so a
technician's tool keeps its port open across soft resets and power cycles. Here the port
is a pty that lives as long as the simulator; each boot of the device gets a fresh console
pty, which this module bridges to the port. The console is the device process's
controlling terminal with ISIG on, so a Ctrl-C from the port interrupts a running app the
way the ESP32's UART interrupt does; the REPL itself switches ISIG off and reads Ctrl-C as
a byte, as it does on the board.

Like a UART, the bridge never blocks: bytes nobody reads are dropped and counted.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import termios
import threading
import tty
from pathlib import Path

TAIL = 64  # the device's last bytes: enough to tell how its REPL left off
SOFT_RESET_RAW = b"OK\r\n"  # what the raw REPL says just before a Ctrl-D soft reset


def _raw(fd: int, isig: bool = False) -> None:
    tty.setraw(fd)
    if isig:
        attrs = termios.tcgetattr(fd)
        attrs[3] |= termios.ISIG
        termios.tcsetattr(fd, termios.TCSANOW, attrs)


def take_console() -> None:
    """In the device's process before exec: a new session whose controlling terminal is
    its console (stdin), so the console's Ctrl-C becomes SIGINT for it."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class SerialPort:
    def __init__(self, link: Path):
        self._port, self._keep = pty.openpty()  # the slave stays open so clients may come and go
        _raw(self._keep)
        os.set_blocking(self._port, False)
        self.tty = os.ttyname(self._keep)
        self.link = Path(link)  # a stable name for the port: a symlink to the pty
        self.link.parent.mkdir(parents=True, exist_ok=True)
        self.link.unlink(missing_ok=True)
        self.link.symlink_to(self.tty)
        self.dropped = 0  # bytes lost because nobody read them or no device was listening
        self.tail = b""
        self._console: int | None = None
        self._drained = threading.Event()
        self._drained.set()
        self._wake_r, self._wake_w = os.pipe()
        self._closed = False
        self._thread = threading.Thread(target=self._pump, name=f"serial {self.link.name}", daemon=True)
        self._thread.start()

    def console(self, preamble: bytes = b"") -> int:
        """A fresh console for the device's next boot; returns the end its process gets (the
        caller closes it once the process has it). `preamble` is typed into it first."""
        self.wait_drained()
        master, slave = pty.openpty()
        _raw(slave, isig=True)
        os.set_blocking(master, False)
        if preamble:
            os.write(master, preamble)
        self.tail = b""
        self._drained.clear()
        self._console = master
        os.write(self._wake_w, b".")
        return slave

    def wait_drained(self, timeout: float = 2.0) -> bool:
        """True once everything the last boot wrote has been passed to the port."""
        return self._drained.wait(timeout)

    def write(self, data: bytes) -> None:
        """Bytes the board prints between two firmware processes (the soft-reboot banner)."""
        self._to_port(data)

    def _to_port(self, data: bytes) -> None:
        try:
            n = os.write(self._port, data)
        except BlockingIOError:
            n = 0
        self.dropped += len(data) - n

    def _pump(self) -> None:
        while not self._closed:
            console = self._console
            fds = [self._port, self._wake_r] + ([console] if console is not None else [])
            try:
                ready, _, _ = select.select(fds, [], [], 1.0)
            except (OSError, ValueError):
                return  # closed under us
            if self._wake_r in ready:
                os.read(self._wake_r, 512)
            if console is not None and console in ready:
                try:
                    data = os.read(console, 4096)
                except BlockingIOError:
                    data = None
                except OSError:  # EIO: the device process has gone; its console with it
                    data = b""
                if data:
                    self.tail = (self.tail + data)[-TAIL:]
                    self._to_port(data)
                elif data == b"":
                    os.close(console)
                    self._console = None
                    self._drained.set()
            if self._port in ready:
                try:
                    data = os.read(self._port, 4096)
                except (BlockingIOError, OSError):
                    continue
                if self._console is None:
                    self.dropped += len(data)  # a UART into a chip that is resetting
                    continue
                try:
                    n = os.write(self._console, data)
                except (BlockingIOError, OSError):
                    n = 0
                self.dropped += len(data) - n

    def close(self) -> None:
        self._closed = True
        os.write(self._wake_w, b".")
        self._thread.join(2)
        for fd in (self._port, self._keep, self._wake_r, self._wake_w):
            os.close(fd)
        if self._console is not None:
            os.close(self._console)
        self.link.unlink(missing_ok=True)
