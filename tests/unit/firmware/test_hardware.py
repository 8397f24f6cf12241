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


TABLET = json.loads((HARDWARE_DIR / "tablet.json").read_text())
S3_PINS = set(range(0, 22)) | set(range(26, 49))  # the GPIOs an ESP32-S3 has
S3_OCTAL = set(range(26, 38))  # the N16R8 module's flash and octal PSRAM
S3_STRAPPING = {0, 3, 45, 46}
S3_USB, S3_UART0, S3_RGB_LED = {19, 20}, {43, 44}, {38, 48}


def test_the_tablet_pin_map_obeys_the_esp32_s3s_rules():
    d, t, a = TABLET["display"], TABLET["touch"], TABLET["audio"]
    pins = [d["spi"][k] for k in ("sck", "mosi", "miso")] + [d[k] for k in ("cs", "dc", "rst", "backlight")]
    pins += [t["i2c"]["sda"], t["i2c"]["scl"], t["int"], t["rst"]] + [a[k] for k in ("sck", "ws", "sd")]
    assert len(pins) == len(set(pins)), "a pin is used twice"
    assert set(pins) <= S3_PINS
    assert not set(pins) & (S3_OCTAL | S3_STRAPPING | S3_USB | S3_UART0 | S3_RGB_LED)
    assert TABLET["model"] == "tablet" and (d["width"], d["height"]) == (480, 320)  # the canvas's size
    assert a["optional"] is False  # the tablet always speaks


def test_a_tablet_build_carries_its_pin_map_font_and_model(tmp_path):
    out = tmp_path / "fw"
    r = subprocess.run([sys.executable, "-m", "gateway", "firmware", "build", "--model", "tablet", "--out", str(out)],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "manifest.json").read_text())
    assert m["model"] == "tablet" and m["outbox"]["writes"] == 2 and 2 in m["outbox"]["reads"]
    assert "font_large.bin" in m["files"] and "font.bin" not in m["files"] and "board_tablet.mpy" in m["files"]
    assert (out / "font_large.bin").read_bytes()[:4] == b"PJF2"
    script = f"import sys, json\nsys.path.insert(0, {str(out)!r})\nimport pins\nprint(json.dumps(pins.BOARD))"
    p = subprocess.run([micropython_binary(), "-c", script], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == TABLET
