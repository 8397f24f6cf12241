"""Pingjia firmware: the device code in device/ (MicroPython) and its host-side tools."""

from pathlib import Path

DEVICE_DIR = Path(__file__).parent / "device"
