"""Firmware builds the gateway keeps, and their staged rollouts (protocol.md section 12).

A build is kept under home/firmware/<content hash>/ with its manifest, after every file
was checked against the manifest and the manifest's hash against its files: what the
gateway serves a device is exactly what the hash names. A rollout sends the build to its
devices stage by stage (a canary, then a share, then the rest); gateway/ota.py moves it on.

    rollouts         id, hash, state (running, halted, done, cancelled), stage, why ...
    rollout_devices  rollout, dev, stage, state (waiting, sent, staged, healthy,
                     rolled_back, failed), sent_at, attempts, detail
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import random
import re
import shutil
import zipfile
from pathlib import Path

from ..errors import Conflict, NotFound, PingjiaError
from ..protocol import MODELS
from . import one, rows, transaction

NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,39}$")
MAX_FILES = 64
MAX_BYTES = 8_000_000  # a build unpacked: the code and a GBK font are about 1 MB
MAX_MANIFEST = 16_000  # bytes: read at every chunk a device asks for
MAX_BUILDS = 20  # kept at once: remove old ones to keep more
FREE_AFTER = 500_000_000  # bytes the disk must keep free after a build is stored (the ratings')
MANIFEST_KEYS = {"firmware", "model", "version", "compiler", "boot", "files", "content_hash", "outbox"}
ACTIVE = ("running", "halted")  # a rollout that still holds its devices
DEVICE_STATES = ("waiting", "sent", "staged", "healthy", "rolled_back", "failed")


class BadBuild(PingjiaError):
    """An upload that is not a whole, consistent firmware build."""


def create(db) -> None:
    """The tables (schema migration 7)."""
    db.execute("""create table firmware (hash text primary key, version text not null, manifest text not null,
                  bytes integer not null, uploaded_at real not null, uploaded_by text not null)""")
    db.execute("""create table rollouts (id integer primary key, hash text not null references firmware (hash),
                  state text not null, stage integer not null, stages text not null, created_at real not null,
                  created_by text not null, updated_at real not null, why text)""")
    db.execute("""create table rollout_devices (rollout_id integer not null references rollouts (id),
                  dev text not null, stage integer not null, state text not null, sent_at real,
                  attempts integer not null default 0, updated_at real not null, detail text,
                  primary key (rollout_id, dev))""")
    db.execute("create index rollout_devices_dev on rollout_devices (dev, state)")


def content_hash(entries: dict[str, str]) -> str:
    """A build's identity (firmware/build.py writes it, the device's update.py checks it):
    SHA-256 over its files' names and SHA-256s."""
    return hashlib.sha256("".join(f"{n}\0{h}\n" for n, h in sorted(entries.items())).encode()).hexdigest()


def unpack(data: bytes) -> tuple[dict, dict[str, bytes]]:
    """A build uploaded as a zip of its folder: its manifest and files, each checked."""
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
        infos = z.infolist()
    except (zipfile.BadZipFile, ValueError) as e:
        raise BadBuild(f"not a zip file: {e}") from None
    if len(infos) > MAX_FILES + 1:
        raise BadBuild(f"more than {MAX_FILES} files")
    if sum(i.file_size for i in infos) > MAX_BYTES:  # the sizes it claims; checked again as read
        raise BadBuild(f"larger than {MAX_BYTES} bytes unpacked")
    files: dict[str, bytes] = {}
    for i in infos:
        name = i.filename  # flat, as `pingjia gateway firmware upload` zips a build: no folder, no ..
        if not NAME.match(name) or name.endswith(".part") or name in files:
            raise BadBuild(f"a file named {i.filename!r}")
        with z.open(i) as f:
            body = f.read(MAX_BYTES + 1)
        if len(body) > MAX_BYTES or len(body) != i.file_size:
            raise BadBuild(f"{name} is not the size the zip says")
        files[name] = body
    raw = files.pop("manifest.json", b"")
    if not raw or len(raw) > MAX_MANIFEST:
        raise BadBuild(f"no manifest.json of at most {MAX_MANIFEST} bytes")
    try:
        manifest = json.loads(raw)
        return check(manifest, files), files
    except BadBuild:
        raise
    except (ValueError, TypeError, AttributeError, KeyError, RecursionError) as e:
        raise BadBuild(f"the manifest does not read as one: {type(e).__name__}") from None


def check(manifest: dict, files: dict[str, bytes]) -> dict:
    """The manifest, if it names exactly these files with their SHA-256s and its hash is theirs."""
    if not isinstance(manifest, dict) or manifest.get("firmware") != "pingjia-evaluator":
        raise BadBuild("not an evaluator build's manifest")
    if set(manifest) - MANIFEST_KEYS:
        raise BadBuild(f"the manifest has fields no build writes: {sorted(set(manifest) - MANIFEST_KEYS)[:3]}")
    if manifest.get("model", "five-button") not in MODELS:
        raise BadBuild(f"the manifest names no model of {', '.join(MODELS)}")
    boot, slot = manifest.get("boot"), manifest.get("files")
    if not (isinstance(boot, dict) and isinstance(slot, dict)) or set(boot) & set(slot):
        raise BadBuild("the manifest's boot and files are not two lists of distinct files")
    box = manifest.get("outbox")
    if not (isinstance(box, dict) and type(box.get("writes")) is int and isinstance(box.get("reads"), list)):
        raise BadBuild("the manifest names no outbox formats")
    listed = {**boot, **slot}
    if set(listed) != set(files):
        raise BadBuild(f"the files differ from the manifest's: {sorted(set(listed) ^ set(files))[:5]}")
    for name, body in files.items():
        if hashlib.sha256(body).hexdigest() != listed[name]:
            raise BadBuild(f"{name} does not match its SHA-256 in the manifest")
    if content_hash(listed) != manifest.get("content_hash"):
        raise BadBuild("the manifest's content hash is not its files'")
    if not isinstance(manifest.get("version"), str) or not 0 < len(manifest["version"]) <= 32:
        raise BadBuild("the manifest names no version")
    if not ({"app.mpy", "app.py"} & set(manifest.get("files") or {})):
        raise BadBuild("no app module in the slot's files")
    return manifest


def store(db, home: Path, data: bytes, actor: str, now: float) -> dict:
    """Keep an uploaded build (a zip of a `pingjia firmware build` folder)."""
    manifest, files = unpack(data)
    h = manifest["content_hash"]
    if one(db, "select hash from firmware where hash = ?", [h]):
        raise Conflict(f"build {h[:12]} is kept already")
    if (one(db, "select count(*) n from firmware") or {"n": 0})["n"] >= MAX_BUILDS:
        raise Conflict(f"{MAX_BUILDS} builds are kept: remove one no rollout holds first")
    size = sum(len(b) for b in files.values())
    if shutil.disk_usage(home).free - size < FREE_AFTER:
        raise Conflict("too little disk left for another build beside the ratings")
    folder = Path(home) / "firmware" / h
    tmp = folder.with_name(h + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, body in files.items():
        (tmp / name).write_bytes(body)
    (tmp / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    with transaction(db):
        db.execute("insert or ignore into firmware values (?, ?, ?, ?, ?, ?)",
                   [h, manifest["version"], json.dumps(manifest), size, now, actor])
    return view({"hash": h, "version": manifest["version"], "manifest": json.dumps(manifest), "bytes": size,
                 "uploaded_at": now, "uploaded_by": actor})


def remove(db, home: Path, h: str) -> None:
    with transaction(db):
        if get(db, h) is None:
            raise NotFound(f"no build {h[:12]} kept")
        if one(db, "select id from rollouts where hash = ? and state in ('running', 'halted')", [h]):
            raise Conflict(f"a rollout not finished holds build {h[:12]}: cancel it first")
        db.execute("delete from rollout_devices where rollout_id in (select id from rollouts where hash = ?)", [h])
        db.execute("delete from rollouts where hash = ?", [h])
        db.execute("delete from firmware where hash = ?", [h])
    shutil.rmtree(Path(home) / "firmware" / h, ignore_errors=True)


def get(db, h: str) -> dict | None:
    return one(db, "select * from firmware where hash = ?", [h])


def view(r: dict) -> dict:
    m = json.loads(r["manifest"])
    return {"hash": r["hash"], "version": r["version"], "model": m.get("model", "five-button"),
            "bytes": r["bytes"], "files": len(m["files"]),
            "outbox": m.get("outbox"), "uploaded_at": r["uploaded_at"], "uploaded_by": r["uploaded_by"]}


def listed(db) -> list[dict]:
    return [view(r) for r in rows(db, "select * from firmware order by uploaded_at desc")]


def file_path(home: Path, h: str, name: str, manifest: dict) -> Path | None:
    """The file a device asks for, if the build has it (manifest.json, or one it lists)."""
    if name != "manifest.json" and name not in (manifest.get("files") or {}):
        return None
    return Path(home) / "firmware" / h / name


# -- rollouts ---------------------------------------------------------------------------
def stages_of(n: int, canary: int, shares: list[float]) -> list[int]:
    """How many devices have the build once each stage is done: the canary first, then
    each share of all of them, the last stage all."""
    out = [min(n, canary)]
    for share in shares:
        out.append(max(out[-1], min(n, math.ceil(share * n - 1e-9))))
    if out[-1] < n:
        out.append(n)
    return [c for i, c in enumerate(out) if i == 0 or c > out[i - 1]]


def model_of(build: dict) -> str:
    """The model a build is for: builds from before the tablet are the five-button's."""
    return json.loads(build["manifest"]).get("model", "five-button")


def start(db, h: str, devs: list[str], canary: int, shares: list[float], actor: str, now: float) -> dict:
    """A rollout of build h to devs, which must all be of the build's model (a device
    refuses another model's build, so sending it would only fail the rollout)."""
    build = get(db, h)
    if build is None:
        raise NotFound(f"no build {h[:12]} kept: upload it first")
    model = model_of(build)
    other = rows(db, f"select dev, model from devices where model != ? and dev in ({','.join('?' * len(devs))})",
                 [model, *devs]) if devs else []
    if other:
        raise Conflict(f"{other[0]['dev']} is a {other[0]['model']}: build {h[:12]} is for the {model} model")
    if not devs:
        raise Conflict("no device to update")
    counts = stages_of(len(devs), canary, shares)
    order = sorted(set(devs))
    random.shuffle(order)  # the canary is nobody's choice (staff could keep their own device off)
    with transaction(db):  # the check and the insert at once: two starts cannot both take a device
        busy = rows(db, f"select distinct d.dev from rollout_devices d join rollouts r on r.id = d.rollout_id "
                        f"where r.state in {ACTIVE} and d.dev in ({','.join('?' * len(order))})", order)
        if busy:
            raise Conflict(f"{busy[0]['dev']} is in a rollout not finished: cancel it first")
        rid = db.execute("insert into rollouts (hash, state, stage, stages, created_at, created_by, updated_at) "
                         "values (?, 'running', 0, ?, ?, ?, ?)", [h, json.dumps(counts), now, actor, now]).lastrowid
        for i, dev in enumerate(order):
            stage = next(k for k, c in enumerate(counts) if i < c)
            db.execute("insert into rollout_devices (rollout_id, dev, stage, state, updated_at) "
                       "values (?, ?, ?, 'waiting', ?)", [rid, dev, stage, now])
    return rollout(db, rid)


def rollout(db, rid: int) -> dict:
    r = one(db, "select * from rollouts where id = ?", [rid])
    if r is None:
        raise NotFound(f"no rollout {rid}")
    r["stages"] = json.loads(r["stages"])
    r["devices"] = rows(db, "select dev, stage, state, sent_at, attempts, updated_at, detail from rollout_devices "
                            "where rollout_id = ? order by stage, dev", [rid])
    counts: dict[str, int] = {}
    for d in r["devices"]:
        counts[d["state"]] = counts.get(d["state"], 0) + 1
    r["counts"] = counts
    return r


def rollouts(db, limit: int = 50) -> list[dict]:
    return [rollout(db, r["id"]) for r in rows(db, "select id from rollouts order by id desc limit ?", [limit])]


def running(db) -> list[int]:
    return [r["id"] for r in rows(db, "select id from rollouts where state = 'running' order by id")]


def set_state(db, rid: int, state: str, now: float, why: str | None = None, allowed: tuple = ()) -> dict:
    with transaction(db):
        r = one(db, "select state from rollouts where id = ?", [rid])
        if r is None:
            raise NotFound(f"no rollout {rid}")
        if allowed and r["state"] not in allowed:
            raise Conflict(f"rollout {rid} is {r['state']}")
        db.execute("update rollouts set state = ?, why = coalesce(?, why), updated_at = ? where id = ?",
                   [state, why, now, rid])
    return rollout(db, rid)


def set_device(db, rid: int, dev: str, now: float, **fields) -> None:
    cols = ", ".join(f"{k} = ?" for k in fields)
    db.execute(f"update rollout_devices set {cols}, updated_at = ? where rollout_id = ? and dev = ?",
               [*fields.values(), now, rid, dev])


def wanted(db, dev: str) -> dict | None:
    """The build a running rollout is sending this device, with the command's ID."""
    return one(db, "select r.id rollout_id, r.hash, f.manifest from rollout_devices d "
                   "join rollouts r on r.id = d.rollout_id join firmware f on f.hash = r.hash "
                   "where d.dev = ? and d.state in ('sent', 'staged') and r.state in ('running', 'halted') "
                   "order by r.id desc limit 1", [dev])


def replied(db, dev: str, cmd_id: str, ok: bool, detail: str, now: float) -> None:
    """A device's answer to an update command (D/cmd/reply)."""
    m = re.match(r"^u-(\d+)-", cmd_id or "")
    if not m:
        return
    rid = int(m.group(1))
    d = one(db, "select state from rollout_devices where rollout_id = ? and dev = ?", [rid, dev])
    if d is None or d["state"] not in ("sent", "staged"):
        return
    if ok and detail in ("staged", "running"):
        set_device(db, rid, dev, now, state="staged", detail=detail)
    elif not ok:
        set_device(db, rid, dev, now, state="failed", detail=f"refused: {detail}"[:200])

