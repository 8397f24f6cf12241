import json
import subprocess
from pathlib import Path

import pytest

import firmware
from firmware import micropython_binary
from simulator.harness import Hall

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "protocol" / "vectors"
SHOTS = ROOT / "build" / "console"  # the console's screenshots, test artefacts to look at


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, through Playwright."""
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        yield b
        b.close()


def run_device_code(script: str, cwd: Path, heap: str = "256k") -> list:
    """Run a script under the real MicroPython unix port with the device code importable;
    the script prints one JSON value per line, returned as a list."""
    prelude = f"import sys\nsys.path.insert(0, {str(firmware.DEVICE_DIR)!r})\n"
    p = subprocess.run([micropython_binary(), "-X", f"heapsize={heap}", "-c", prelude + script],
                       cwd=cwd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]


@pytest.fixture
def hall_factory(tmp_path):
    """Start a hall with the given Hall options; stopped at the end of the test."""
    halls = []

    def make(**options):
        h = Hall(tmp_path / f"hall{len(halls)}", **{"devices": 3, "hall": "test", "seed": 1, **options})
        halls.append(h)
        return h.start()

    yield make
    for h in halls:
        h.stop()


@pytest.fixture
def hall(hall_factory):
    return hall_factory()
