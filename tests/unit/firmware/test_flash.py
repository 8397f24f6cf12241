"""`pingjia device flash` writes only an image the firmware is known to run on; the
board's MicroPython is checked before an install."""

import hashlib
import json
import struct

import pytest

from firmware import flash
from firmware.usb import FieldError, unsupported


def image(version: str, project: str = "micropython") -> bytes:
    """An ESP-IDF app image's bytes with its app description (esp_app_desc_t) in them."""
    desc = struct.pack("<II8s32s32s", 0xABCD5432, 0, b"", version.encode(), project.encode())
    return b"\xe9" + bytes(0x1f) + desc + bytes(4096)


def test_an_image_is_written_only_when_it_is_known(tmp_path, monkeypatch):
    cases = {"noise.bin": bytes(range(256)) * 64, "old.bin": image("v1.19.1"),
             "other.bin": image("v1.29.0", "arduino"), "new.bin": image("v1.29.0")}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    with pytest.raises(FieldError, match="not a MicroPython ESP32 image"):
        flash.check_image(tmp_path / "noise.bin", unlisted=True)
    with pytest.raises(FieldError, match="not a MicroPython ESP32 image"):
        flash.check_image(tmp_path / "other.bin", unlisted=True)
    with pytest.raises(FieldError, match=r"MicroPython v1\.19\.1; the firmware runs on v1\.29\.0"):
        flash.check_image(tmp_path / "old.bin", unlisted=True)
    with pytest.raises(FieldError, match="not in the list of images checked on a real board"):
        flash.check_image(tmp_path / "new.bin", unlisted=False)
    assert flash.check_image(tmp_path / "new.bin", unlisted=True)["listed"] is False
    with pytest.raises(FieldError, match="cannot read"):
        flash.check_image(tmp_path / "missing.bin", unlisted=True)
    # an image on the list is written without question
    listed = tmp_path / "micropython.json"
    sha = hashlib.sha256(cases["new.bin"]).hexdigest()
    listed.write_text(json.dumps({"versions": ["v1.29.0"], "images": [{"sha256": sha, "version": "v1.29.0"}]}))
    monkeypatch.setattr(flash, "KNOWN", listed)
    assert flash.check_image(tmp_path / "new.bin", unlisted=False) == {"sha256": sha, "version": "v1.29.0",
                                                                        "listed": True}


def test_the_shipped_list_names_versions_and_no_unchecked_image():
    k = flash.known()
    assert k["versions"] and all(v.startswith("v1.") for v in k["versions"])
    assert all(len(i["sha256"]) == 64 and i["version"] in k["versions"] for i in k["images"])


def test_esptool_writes_the_image_at_the_esp32s_offset():
    runs = flash.esptool_args("/dev/ttyUSB0", "img.bin", erase=True)
    assert runs[0][-1] == "erase-flash"
    assert runs[1][-4:] == ["write-flash", "-z", "0x1000", "img.bin"] and "--chip" in runs[1]


def test_a_micropython_too_old_for_the_bytecode_is_named():
    assert unsupported({"version": [1, 29, 0], "mpy": 6}) is None
    assert "MicroPython 1.19.1 on the board" in unsupported({"version": [1, 19, 1], "mpy": 6})
    assert "(.mpy v5)" in unsupported({"version": [1, 22, 0], "mpy": 5})
