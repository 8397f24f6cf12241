"""`pingjia device flash PORT --micropython IMAGE.bin`: MicroPython onto a blank ESP32,
with esptool.

Only an image the firmware is known to run on is written. micropython.json lists them by
SHA-256 (each one checked on a real board before it is listed) and names the MicroPython
versions the firmware supports. An image not listed is refused; one whose own app
description says it is MicroPython of a supported version may be written with
--unlisted, which says that it was not checked.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import struct
from pathlib import Path

from .usb import FieldError

KNOWN = Path(__file__).with_name("micropython.json")
APP_DESC_MAGIC = struct.pack("<I", 0xABCD5432)
ESP32_OFFSET = 0x1000  # where the ESP32's merged MicroPython image starts (its bootloader)


def known() -> dict:
    return json.loads(KNOWN.read_text())


def app_description(image: bytes) -> dict | None:
    """Project name and version from an ESP-IDF app image's esp_app_desc_t. Read by hand:
    esptool prints it (image-info) but offers no call that returns it. The struct is
    magic, secure_version, 8 reserved bytes, version[32], project_name[32], ..."""
    at = image.find(APP_DESC_MAGIC)
    if at < 0 or len(image) < at + 80:
        return None
    field = lambda o: image[at + o:at + o + 32].split(b"\0")[0].decode(errors="replace")  # noqa: E731
    return {"version": field(16), "project": field(48)}


def check_image(path: Path, unlisted: bool) -> dict:
    """What the image is, if it may be written; else a FieldError saying why not."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise FieldError(f"cannot read {path}: {e.strerror}") from None
    sha = hashlib.sha256(data).hexdigest()
    k = known()
    for img in k["images"]:
        if img["sha256"] == sha:
            return {**img, "listed": True}
    desc = app_description(data)
    if not desc or desc["project"] != "micropython":
        raise FieldError(f"{Path(path).name} is not a MicroPython ESP32 image (SHA-256 {sha[:12]}): download "
                         f"ESP32_GENERIC from micropython.org")
    version = desc["version"].split("-")[0]
    if version not in k["versions"]:
        raise FieldError(f"{Path(path).name} is MicroPython {desc['version']}; the firmware runs on "
                         f"{', '.join(k['versions'])}: download one of those")
    if not unlisted:
        raise FieldError(f"{Path(path).name} (MicroPython {version}, SHA-256 {sha[:12]}) is not in the list of "
                         f"images checked on a real board: --unlisted writes it anyway")
    return {"version": version, "sha256": sha, "listed": False}


def esptool_args(port: str, image: Path, erase: bool) -> list[list[str]]:
    base = ["--chip", "esp32", "--port", port, "--baud", "460800"]
    runs = [[*base, "erase-flash"]] if erase else []
    return [*runs, [*base, "write-flash", "-z", hex(ESP32_OFFSET), str(image)]]


def write(port: str, image: Path, erase: bool) -> None:
    import esptool

    for argv in esptool_args(port, image, erase):
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                esptool.main(argv)
        except (esptool.FatalError, OSError, SystemExit) as e:
            text = f"{out.getvalue()}\n{e}"
            if "Failed to connect" in text or "No serial data received" in text:
                raise FieldError(f"no ESP32 answers on {port} in download mode: hold BOOT, press EN (reset), "
                                 f"release BOOT, and run this again") from None
            if "could not open port" in text or "Errno 16" in text or "busy" in text.lower():
                raise FieldError(f"{port} is busy: close the other program using it and try again") from None
            raise FieldError(f"esptool failed: {str(e).strip() or text.strip().splitlines()[-1]}") from None


def main(args) -> int:
    img = check_image(Path(args.micropython), getattr(args, "unlisted", False))
    if not img["listed"]:
        print(f"warning: MicroPython {img['version']} image {img['sha256'][:12]} was not checked on a real board")
    write(args.port, Path(args.micropython), args.erase)
    print(f"{args.port}: MicroPython {img['version']} written; next: pingjia device setup {args.port} --window W..")
    return 0
