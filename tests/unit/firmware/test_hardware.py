"""The reference board's pin map: the ESP32's pin rules, and the firmware reading it."""

import json
import subprocess
import sys

from firmware import micropython_binary
from firmware.build import HARDWARE_DIR
from gateway.protocol import LEVELS

BOARD = json.loads((HARDWARE_DIR / "five-button.json").read_text())
FLASH = set(range(6, 12))  # wired to the module's flash
STRAPPING = {0, 12, 15}  # decide the boot mode (2 and 5 too, but outputs there are safe)
INPUT_ONLY = set(range(34, 40))  # and without internal pull-ups


def used_pins():
    b = BOARD
    pins = [x["gpio"] for x in b["buttons"]] + [x["led_gpio"] for x in b["buttons"]]
    pins += [b["buzzer"]["gpio"], b["display"]["i2c"]["sda"], b["display"]["i2c"]["scl"], b["status_led_gpio"]]
    pins += [b["audio"][k] for k in ("sck", "ws", "sd")]  # the optional I2S amplifier: its pins kept free for it
    return pins


def test_pin_map_obeys_the_esp32s_rules():
    pins = used_pins()
    assert len(pins) == len(set(pins)), "a pin is used twice"
    assert not (set(pins) & (FLASH | STRAPPING))
    outputs = [x["led_gpio"] for x in BOARD["buttons"]] + [BOARD["buzzer"]["gpio"], BOARD["status_led_gpio"]]
    outputs += [BOARD["audio"][k] for k in ("sck", "ws", "sd")]
    assert not set(outputs) & INPUT_ONLY
    if BOARD["button_pull"] == "up":  # internal pull-ups exist only outside 34-39
        assert not {x["gpio"] for x in BOARD["buttons"]} & INPUT_ONLY
    assert [x["level"] for x in BOARD["buttons"]] == list(LEVELS)  # button 1 is the best level
    assert [x["label"] for x in BOARD["buttons"]] == [name for name, _ in LEVELS.values()]


def test_the_build_carries_the_pin_map_to_the_device(tmp_path):
    out = tmp_path / "fw"
    r = subprocess.run([sys.executable, "-m", "gateway", "firmware", "build", "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    script = f"import sys, json\nsys.path.insert(0, {str(out)!r})\nimport pins\nprint(json.dumps(pins.BOARD))"
    p = subprocess.run([micropython_binary(), "-c", script], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == BOARD
