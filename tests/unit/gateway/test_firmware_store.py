"""What the gateway keeps of an uploaded build: exactly a whole, consistent one, and
nothing a device's key or a tampered zip could turn into more (tests/test_ota.py has the
builds through the real parts)."""

import hashlib
import io
import json
import time
import zipfile

import pytest

from gateway.data import firmware, open_db


def build_zip(contents: dict[str, bytes], **manifest_changes) -> bytes:
    entries = {n: hashlib.sha256(b).hexdigest() for n, b in contents.items()}
    m = {"firmware": "pingjia-evaluator", "version": "9.9.9", "compiler": "t",
         "boot": {n: h for n, h in entries.items() if n == "main.py"},
         "files": {n: h for n, h in entries.items() if n != "main.py"},
         "content_hash": firmware.content_hash(entries), "outbox": {"reads": [1], "writes": 1}}
    m.update(manifest_changes)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for n, b in contents.items():
            z.writestr(n, b)
        z.writestr("manifest.json", json.dumps(m) if not isinstance(m.get("raw"), str) else m["raw"])
    return out.getvalue()


FILES = {"main.py": b"import slots\n", "app.mpy": b"M\x06app", "flow.mpy": b"M\x06flow"}


def test_a_whole_build_is_kept_and_served_by_its_files_only(tmp_path):
    db = open_db(tmp_path / "g.db")
    kept = firmware.store(db, tmp_path, build_zip(FILES), "admin", time.time())
    m = json.loads(firmware.get(db, kept["hash"])["manifest"])
    assert firmware.file_path(tmp_path, kept["hash"], "flow.mpy", m).read_bytes() == FILES["flow.mpy"]
    assert firmware.file_path(tmp_path, kept["hash"], "manifest.json", m) is not None
    assert firmware.file_path(tmp_path, kept["hash"], "main.py", m) is None  # boot files go over USB only
    assert firmware.file_path(tmp_path, kept["hash"], "../gateway.json", m) is None
    with pytest.raises(firmware.Conflict):
        firmware.store(db, tmp_path, build_zip(FILES), "admin", time.time())
    firmware.remove(db, tmp_path, kept["hash"])
    assert firmware.listed(db) == [] and not (tmp_path / "firmware" / kept["hash"]).exists()


@pytest.mark.parametrize("data, why", [
    (b"PK\x03\x04 not a zip", "not a zip"),
    (build_zip({**FILES, "../evil.mpy": b"x"}), "a file named"),
    (build_zip({**FILES, "flow.mpy.part": b"x"}), "a file named"),
    (build_zip(FILES, content_hash="0" * 64), "content hash"),
    (build_zip(FILES, extra="x" * 100), "fields no build writes"),
    (build_zip(FILES, files=[1, 2]), "two lists"),
    (build_zip(FILES, outbox=None), "outbox formats"),
    (build_zip(FILES, raw="[" * 5000 + "]" * 5000), "does not read as one"),
    (build_zip(FILES, raw="x" * 20000), "at most"),
    (build_zip({"main.py": b"m", "flow.mpy": b"f"}), "no app module"),
])
def test_a_build_that_is_not_whole_and_consistent_is_refused(tmp_path, data, why):
    db = open_db(tmp_path / "g.db")
    with pytest.raises(firmware.BadBuild, match=why):
        firmware.store(db, tmp_path, data, "admin", time.time())
    assert firmware.listed(db) == []


def test_a_file_changed_after_its_manifest_is_refused(tmp_path):
    data = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(build_zip(FILES))) as src, zipfile.ZipFile(data, "w") as z:
        for i in src.infolist():
            body = src.read(i)
            z.writestr(i.filename, body + b"!" if i.filename == "flow.mpy" else body)
    with pytest.raises(firmware.BadBuild, match="flow.mpy does not match"):
        firmware.unpack(data.getvalue())


def test_stages_grow_to_every_device():
    assert firmware.stages_of(10, 1, [0.25, 1.0]) == [1, 3, 10]
    assert firmware.stages_of(1, 1, [0.25, 1.0]) == [1]
    assert firmware.stages_of(3, 1, []) == [1, 3]
    assert firmware.stages_of(100, 5, [0.01, 0.5]) == [5, 50, 100]
