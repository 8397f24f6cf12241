"""`pingjia firmware build`: .mpy bytecode the MicroPython in use loads, a manifest, and
no stale .py beside a .mpy."""

import hashlib
import json
import subprocess
import sys

from firmware import micropython_binary
from tests.conftest import VECTORS


def build(out):
    r = subprocess.run([sys.executable, "-m", "gateway", "firmware", "build", "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads((out / "manifest.json").read_text())


def test_build_makes_bytecode_with_a_manifest_and_no_stale_source(tmp_path):
    out = tmp_path / "fw"
    out.mkdir()
    (out / "proto.py").write_text("raise SystemExit('a stale source file')\n")
    m = build(out)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([*m["boot"], *m["files"], "manifest.json"])
    assert [n for n in names if n.endswith(".py")] == ["main.py"]  # the stale proto.py is gone
    assert set(m["boot"]) == {"main.py", "slots.mpy"}  # the flash root's; the rest goes into a slot
    assert {"proto.mpy", "outbox.mpy", "mqtt.mpy", "evaluator.mpy", "app.mpy", "update.mpy", "font.bin"} \
        <= set(m["files"])
    assert m["outbox"] == {"reads": [1, 2], "writes": 1} and m["model"] == "five-button"  # 2: the tablet's records
    entries = {**m["boot"], **m["files"]}
    assert m["content_hash"] == hashlib.sha256("".join(f"{n}\0{h}\n" for n, h in sorted(entries.items()))
                                               .encode()).hexdigest()
    assert m["version"] == "0.1.0" and "mpy v6" in m["compiler"]
    assert build(tmp_path / "again")["content_hash"] == m["content_hash"]  # reproducible


def test_the_bytecode_runs_under_micropython(tmp_path):
    out = tmp_path / "fw"
    build(out)
    (tmp_path / "signing.json").write_text((VECTORS / "signing.json").read_text())
    script = f"""
import sys, json, binascii
sys.path.insert(0, {str(out)!r})
import proto, outbox, state, mqtt, evaluator, board_unix, update, app
ok = 0
for v in json.load(open("signing.json"))["vectors"]:
    s = proto.Signer(binascii.unhexlify(v["key"]))
    ok += s.sign(v["kind"], v["msg"]) == v["sig"]
print(json.dumps([ok, proto.__file__ if hasattr(proto, "__file__") else "?"]))
"""
    r = subprocess.run([micropython_binary(), "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    ok, path = json.loads(r.stdout.splitlines()[-1])
    n = len(json.loads((VECTORS / "signing.json").read_text())["vectors"])
    assert ok == n and path.endswith("proto.mpy")
