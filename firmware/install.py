"""`pingjia device install | provision | setup | info`: a firmware build and a config onto
a board over USB serial, and what is on it.

The flash (slots.py): main.py and slots.mpy in the root, the build's other files in one of
the two slots, slot.json naming the active one. An install writes the slot the board
does not run, checks every file there against the manifest, then writes the boot files
and switches slot.json to it (a rename: all or nothing). A pulled cable leaves the old
version running and the files copied so far, which the next install keeps: it copies
only what does not match the manifest already.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from pathlib import Path

from tqdm import tqdm

from .usb import Board, FieldError, local_manifest

SLOTS = ("slot.a", "slot.b")
# the board's data: never removed by an install (the outbox above all)
DATA = {"config.json", "outbox.d", "seq", "boot", "slot.json", "maintenance", "reboot.intent", "reset.cause",
        "last_reset", "wdt"}
SECRETS = ("key", "password", "prev_key")


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _state(b: Board) -> dict | None:
    raw = b.read("slot.json")
    try:
        st = json.loads(raw) if raw else None
    except ValueError:
        return None
    return st if isinstance(st, dict) and st.get("active") in SLOTS else None


def install(b: Board, build: Path, progress: bool = True) -> dict:
    """Install a build; returns what was done. The board must be in maintenance."""
    m = local_manifest(build)
    st = _state(b)
    active = st["active"] if st else None
    if active and _verified(b, m, active):
        return {"version": m["version"], "content_hash": m["content_hash"], "slot": active, "copied": 0,
                "already": True}
    target = SLOTS[1] if active == SLOTS[0] else SLOTS[0]
    b.mkdir(target)
    slot = {f"{target}/{n}": h for n, h in m["files"].items()}
    boot = dict(m["boot"])
    have = b.hashes([*slot, *boot])
    todo = [p for p, h in {**slot, **boot}.items() if have.get(p) != h]
    sizes = {p: (Path(build) / p.split("/")[-1]).stat().st_size for p in todo}
    bar = tqdm(total=sum(sizes.values()), unit="B", unit_scale=True, desc="install", disable=not progress,
               file=sys.stderr)
    try:
        # the slot first, checked; then slot.json names it; the boot files last, so that a
        # pulled cable leaves a board that boots: the old version, or the new one (an older
        # main.py runs a slot as well, and one of the layout before slots ignores them)
        for p in [p for p in todo if p in slot]:
            b.write(p, (Path(build) / p.split("/")[-1]).read_bytes(), bar.update)
        stale = [f"{target}/{n}" for n in b.listdir(target) if n not in m["files"] and n != "manifest.json"]
        b.remove(*stale)
        b.write(f"{target}/manifest.json", (Path(build) / "manifest.json").read_bytes())
        _check(b, slot)
        b.write("slot.json", json.dumps({"active": target}).encode())
        for p in [p for p in todo if p in boot]:
            b.write(p, (Path(build) / p).read_bytes(), bar.update)
        _check(b, boot)
    finally:
        bar.close()
    # files of the flat layout before slots: they would only take room
    legacy = [n for n in b.listdir("") if n not in DATA and n not in m["boot"] and n not in SLOTS
              and (n.endswith(".py") or n.endswith(".mpy") or n == "font.bin")]
    b.remove(*legacy)
    return {"version": m["version"], "content_hash": m["content_hash"], "slot": target, "copied": len(todo),
            "removed": len(stale) + len(legacy), "already": False}


def _check(b: Board, wanted: dict[str, str]) -> None:
    bad = [p for p, h in b.hashes(list(wanted)).items() if h != wanted[p]]
    if bad:
        raise FieldError(f"{len(bad)} files on the board do not match the build ({bad[0]}): run install again")


def _verified(b: Board, m: dict, slot: str) -> bool:
    wanted = {f"{slot}/{n}": h for n, h in m["files"].items()} | dict(m["boot"])
    return b.hashes(list(wanted)) == wanted


INFO = """
import os, json, sys
def rd(p):
    try:
        with open(p) as f:
            return f.read()
    except OSError:
        return None
def js(p):
    try:
        return json.loads(rd(p) or "null")
    except ValueError:
        return None
st = js("slot.json") or {}
slot = st.get("active")
m = js(slot + "/manifest.json") if slot else None
cfg = js("config.json")
depth = None
if slot:
    sys.path.insert(0, slot)
    try:
        import outbox
        depth = outbox.Outbox().depth()
    except Exception as e:
        depth = repr(e)
print(json.dumps({"slot": st, "manifest": m, "config": cfg, "boot": rd("boot"), "last_reset": rd("last_reset"),
                  "platform": sys.platform, "micropython": list(sys.implementation.version[:3]),
                  "outbox": depth}))
"""


def info(b: Board) -> dict:
    """What is on the board: firmware and whether its files match its manifest, the
    config without its secrets, boot count, last reset cause, outbox depth."""
    raw = b.json(INFO, timeout=30)
    m, st, cfg = raw["manifest"] or {}, raw["slot"] or {}, raw["config"]
    out = {"platform": raw["platform"], "micropython": ".".join(str(x) for x in raw["micropython"]),
           "firmware": m.get("version"), "content_hash": m.get("content_hash"), "slot": st.get("active"),
           "trial": st.get("trial"), "rolled_back": st.get("rolled_back"), "files_match": None,
           "boot_count": int(raw["boot"]) if (raw["boot"] or "").strip().isdigit() else None,
           "last_reset": (raw["last_reset"] or "").strip() or None, "outbox": raw["outbox"]}
    if m.get("files") is not None and st.get("active"):
        # the slot's files; the boot files are the USB install's, and an update over the air
        # leaves them as they were: said apart
        wanted = {f"{st['active']}/{n}": h for n, h in m["files"].items()}
        boot = dict(m.get("boot") or {})
        have = b.hashes([*wanted, *boot])
        out["files_match"] = all(have.get(p) == h for p, h in wanted.items())
        out["files_differing"] = sorted(p for p in wanted if have.get(p) != wanted[p])
        out["boot_files_of_this_build"] = all(have.get(p) == h for p, h in boot.items())
    if isinstance(cfg, dict):
        shown = {k: v for k, v in cfg.items() if k not in SECRETS and k not in ("ca", "wifi")}
        shown["ca"] = bool(cfg.get("ca"))
        wifi = cfg.get("wifi") if isinstance(cfg.get("wifi"), dict) else {}
        shown["wifi"] = {"ssid": wifi.get("ssid")} if wifi else {}
        out["config"] = shown
    else:
        out["config"] = None
    return out


def wait_seen(gw, dev: str, since: float, timeout: float, b: Board | None = None) -> dict:
    """Until the gateway has the device online and its clock synced since `since`. While
    waiting, the board's console is read for what went wrong (Wi-Fi, broker)."""
    deadline = time.monotonic() + timeout
    console = b""
    while True:
        d = gw.call("GET", f"/api/v1/devices/{dev}")
        synced = d.get("sync_at") and datetime.fromisoformat(d["sync_at"]).timestamp() >= since - 1
        if d["online"] and synced:
            return d
        if b is not None:
            console += b.read_console(1.0)
            problem = console_problem(console)
            if problem:
                raise FieldError(problem)
        else:
            time.sleep(1.0)
        if time.monotonic() > deadline:
            raise FieldError(f"{dev} did not reach the gateway in {timeout:.0f} s: check the Wi-Fi name and "
                             f"password, and that the broker ({gw.url}) is reachable from the hall network")


def console_problem(console: bytes) -> str | None:
    """The first problem the app printed on its console (board_*.py say `pingjia: ...`)."""
    text = console.decode(errors="replace")
    for line in text.splitlines():
        if "pingjia: wifi: wrong password" in line:
            return "the Wi-Fi refused the password: provision again with the right --wifi-password"
        if "pingjia: wifi: no network" in line:
            return "the board sees no Wi-Fi of that name: check --wifi (the SSID) and that the board is in range"
        if "pingjia: broker:" in line and "refused" in line:
            return "the broker refused the board's login: provision it again (its credentials are stale)"
        if "pingjia: no usable config.json" in line:
            return "the config did not reach the board: provision again"
    return None


def registration(gw, dev: str, window: str, replace: bool) -> dict:
    """The device's config from the gateway: a new registration, or new credentials for
    one never used (a board provisioned again), or for one in use only with `replace`."""
    r = gw.http.get(f"/api/v1/devices/{dev}")
    if r.status_code == 404:
        return gw.call("POST", "/api/v1/devices", json={"dev": dev, "window": window})
    d = gw.call("GET", f"/api/v1/devices/{dev}")
    if d["state"] == "retired":
        raise FieldError(f"{dev} is retired at the gateway: give the board another device ID (--dev)")
    if d["state"] == "active" and not replace:
        raise FieldError(f"{dev} is registered and in use at window {d['window']}: --replace gives it new "
                         f"credentials (the board that has the old ones stops working)")
    if d["window"] != window:
        gw.call("POST", f"/api/v1/devices/{dev}/window", json={"window": window})
    return gw.call("POST", f"/api/v1/devices/{dev}/rotate", json={"grace_hours": 0})


def board_id(b: Board) -> str | None:
    """The device ID the board already has (its config), or one from its chip's unique ID."""
    cfg = b.read("config.json")
    try:
        dev = json.loads(cfg).get("dev") if cfg else None
    except (ValueError, AttributeError):
        dev = None
    if isinstance(dev, str) and dev:
        return dev
    uid = b.json("import json, binascii\ntry:\n import machine\n u = binascii.hexlify(machine.unique_id())"
                 ".decode()\nexcept (ImportError, AttributeError):\n u = None\nprint(json.dumps(u))")
    return f"pj-{uid[-8:]}" if uid else None


def provision(b: Board, gw, window: str, dev: str | None = None, wifi: tuple[str, str] | None = None,
              replace: bool = False, timeout: float = 60.0) -> dict:
    """Register the board, write its config (never shown), restart it, and wait until the
    gateway sees it online with its clock synced. The board must be in maintenance."""
    if _state(b) is None:
        raise FieldError("no firmware on the board: install it first (pingjia device install PORT), "
                         "or set the board up in one go (pingjia device setup)")
    dev = dev or board_id(b)
    if not dev:
        raise FieldError("this board has no unique ID to name it by: give it one with --dev")
    cfg = registration(gw, dev, window, replace)
    if wifi:
        cfg["wifi"] = {"ssid": wifi[0], "psk": wifi[1]}
    b.write("config.json", json.dumps(cfg).encode())
    since = time.time()
    b.leave_maintenance(reset=True)
    seen = wait_seen(gw, dev, since, timeout, b)
    return {"dev": dev, "window": window, "broker": cfg["broker"], "online": seen["online"],
            "firmware": seen.get("fw")}
