"""Firmware builds for trying updates over the air: the real device code under another
version, and broken on purpose the ways a release can be — a module that fails to
import, or a build that runs but never reaches the gateway."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from firmware import DEVICE_DIR
from firmware.build import build

KINDS = ("good", "import_error", "no_connect")


def make(out: Path, version: str, kind: str = "good", charset: str = "gb2312", model: str = "five-button") -> dict:
    """Build the device code as `version` for `model`, broken as `kind` says; returns the manifest."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    with tempfile.TemporaryDirectory(prefix="pingjia-variant-") as tmp:
        src = Path(tmp) / "device"
        shutil.copytree(DEVICE_DIR, src)
        ev = src / "evaluator.py"
        ev.write_text(re.sub(r'^FW_VERSION = "[^"]+"', f'FW_VERSION = "{version}"', ev.read_text(), flags=re.M))
        if kind == "import_error":
            app = src / "app.py"
            app.write_text("import pingjia_module_that_is_not_there  # noqa\n" + app.read_text())
        elif kind == "no_connect":
            link = src / "link.py"  # a wrong broker port: it runs, and never gets through
            code = link.read_text()
            assert 'host, port = cfg["broker"]' in code, "link.py no longer reads the broker so"
            link.write_text(code.replace('host, port = cfg["broker"]', 'host, port = cfg["broker"][0], 9'))
        return build(Path(out), charset, source=src, model=model)
