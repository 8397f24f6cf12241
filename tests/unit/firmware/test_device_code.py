"""The device code stays inside what MicroPython on an ESP32 offers."""

import ast
import asyncio
import importlib.metadata
import re

import pytest

import firmware
from firmware.build import GENERATED


def esp32_modules() -> set[str]:
    """Top-level modules of the ESP32 port, from the micropython-esp32-stubs and
    micropython-stdlib-stubs packages."""
    names = set()
    for dist in ("micropython-esp32-stubs", "micropython-stdlib-stubs"):
        for f in importlib.metadata.files(dist) or []:
            parts = str(f).removeprefix("stdlib/").split("/")
            if str(f).endswith(".pyi") and not parts[0].startswith("_"):
                names.add(parts[0].removesuffix(".pyi"))
    return names


def test_the_stub_list_is_real():
    mods = esp32_modules()
    assert {"machine", "network", "asyncio", "hashlib", "json", "os"} <= mods
    assert not {"hmac", "sqlite3", "threading", "subprocess"} & mods


def test_device_code_imports_only_esp32_or_its_own_modules():
    own = {p.stem for p in firmware.DEVICE_DIR.glob("*.py")} | GENERATED
    available = esp32_modules() | own
    for path in firmware.DEVICE_DIR.glob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in available, f"{path.name} imports {name}, not on the ESP32"



def _stub(module: str) -> str:
    f = next(f for f in importlib.metadata.files("micropython-esp32-stubs") if str(f) == f"{module}.pyi")
    return f.read_text()


def _methods(tree: ast.AST, classes: set[str] | None = None) -> set[str]:
    return {f.name for c in ast.walk(tree) if isinstance(c, ast.ClassDef) and (classes is None or c.name in classes)
            for f in c.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))}


@pytest.mark.parametrize("board, hardware", [("board_esp32.py", {"duty_u16", "isconnected", "feed"}),
                                             ("board_tablet.py", {"readfrom_mem_into", "irq", "value"})])
def test_the_esp32_boards_use_only_what_machine_and_network_define(board, hardware):
    """Every machine/network name a board touches (machine.WDT, Pin.IRQ_FALLING, ...)
    and every method it calls on what they make (PWM.duty_u16, WLAN.isconnected, ...) is
    defined in the ESP32 port's stubs. The methods are found in the board's code: each
    call whose method is none of the board's own classes, the device classes it imports,
    or Python's built-in types."""
    stubs = _stub("machine") + _stub("network")
    defined = set(re.findall(r"(?:def|class)\s+(\w+)|^\s*(\w+)\s*:", stubs, re.M))
    defined = {a or b for a, b in defined}
    tree = ast.parse((firmware.DEVICE_DIR / board).read_text())
    used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
            and isinstance(n.value, ast.Name) and n.value.id in {"machine", "network", "Pin", "I2S", "SPI", "I2C"}}
    modules, own = set(), _methods(tree)
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            modules |= {a.asname or a.name for a in n.names}
            for a in n.names:  # a device module's classes, subclassed (the tablet's board is the ESP32's)
                if (firmware.DEVICE_DIR / f"{a.name}.py").exists():
                    own |= _methods(ast.parse((firmware.DEVICE_DIR / f"{a.name}.py").read_text()))
        elif isinstance(n, ast.ImportFrom) and (firmware.DEVICE_DIR / f"{n.module}.py").exists():
            own |= _methods(ast.parse((firmware.DEVICE_DIR / f"{n.module}.py").read_text()), {a.name for a in n.names})
    called = {n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
              and not (isinstance(n.func.value, ast.Name) and n.func.value.id in modules)}
    builtin = set().union(*(dir(t) for t in (list, dict, str, bytes, bytearray, int, memoryview, set, tuple,
                                             asyncio.Event, asyncio.Queue, asyncio.Task, asyncio.StreamWriter)))
    methods = called - own - builtin
    assert used and not (used - defined), used - defined
    assert hardware <= methods  # the search finds the hardware's methods
    assert not (methods - defined), methods - defined
