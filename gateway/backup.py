"""A hall's backup: one file an admin can carry off the box, holding what a new box needs
to take the hall over, and the restore that puts it back.

    backup.json          what the file holds: hall, release, schema, ratings, each member's SHA-256
    gateway.db           the database, by SQLite's online backup API: one consistent moment,
                         taken while the ingest goes on writing (WAL readers do not block it)
    gateway.json         the settings (the broker's and the platform's secrets among them)
    holidays.json        the hall's own calendar, if it has one
    tls/                 the hall CA and its key (devices trust it: a new CA means re-provisioning)
    broker/broker.*      the broker's certificate and key
    firmware/            the builds kept for updates over the air

It is a gzip'd tar file, mode 0600: it holds every device's signing key and the CA's key.
The broker's configuration, its queue and the local token are not in it: the gateway makes
them again from the database.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import pwd
import shutil
import sqlite3
import tarfile
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .config import Config, hold
from .data import schema
from .errors import PingjiaError

FORMAT = 1
MANIFEST = "backup.json"
KEEP = 7  # the nightly backups kept in home/backups
FILES = ("gateway.json", "holidays.json")
TREES = ("tls", "firmware")
BROKER_FILES = ("broker/broker.crt", "broker/broker.key")


def release() -> str:
    try:
        return version("pingjia")
    except PackageNotFoundError:
        return "unknown"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _members(home: Path) -> list[str]:
    """The home's regular files that go into a backup, as paths relative to it: not a
    link, not a file being written (.tmp, .part)."""
    def kept(p: Path) -> bool:
        return p.is_file() and not p.is_symlink() and not any(part.endswith((".tmp", ".part"))
                                                               for part in p.relative_to(home).parts)
    out = [name for name in (*FILES, *BROKER_FILES) if kept(home / name)]
    for tree in TREES:
        root = home / tree
        if root.is_dir() and not root.is_symlink():
            out += sorted(str(p.relative_to(home)) for p in root.rglob("*") if kept(p))
    return out


class _Hashing:
    """A file read into the archive, hashed as it is read: the manifest says what was written."""

    def __init__(self, f):
        self.f = f
        self.h = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.h.update(data)
        return data


def _add(tar: tarfile.TarFile, path: Path, name: str) -> str | None:
    """Add one file; its SHA-256, or None if it went away meanwhile (a build removed)."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return None
    with f:
        info = tar.gettarinfo(fileobj=f, arcname=name)
        info.mode, info.uid, info.gid, info.uname, info.gname = 0o600, 0, 0, "", ""
        reader = _Hashing(f)
        tar.addfile(info, reader)  # type: ignore[arg-type]  # tarfile reads it with read(n)
        return reader.h.hexdigest()


def copy_db(src: Path, dst: Path) -> dict:
    """A consistent copy of the database at src, while others write to it; what it holds."""
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=30)
    target = sqlite3.connect(dst)
    try:
        source.backup(target)  # all pages in one step: one read transaction, one moment
        n = target.execute("select count(*) from ratings").fetchone()[0]
        newest = target.execute("select received_at from ratings order by rowid desc limit 1").fetchone()
        level = target.execute("PRAGMA user_version").fetchone()[0]
    finally:
        target.close()
        source.close()
    return {"ratings": n, "newest_rating_at": newest[0] if newest else None, "schema": level}


def backup(cfg: Config, out: Path | None = None, keep: int | None = None) -> dict:
    """Write the hall's backup to `out` (a file, or a folder for a file named by hall and
    time; default home/backups, keeping the `keep` newest there). Returns its manifest,
    with its path and size."""
    home = cfg.home
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = home / "backups" if out is None else Path(out)
    if out is None or folder.is_dir():
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = folder / f"pingjia-{cfg.hall}-{stamp}.tar.gz"
    else:
        path = folder
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".backup-", dir=path.parent))
    part = path.with_name(path.name + ".part")
    try:
        db_copy = tmp / "gateway.db"
        try:
            held = copy_db(cfg.db_path, db_copy)
        except sqlite3.OperationalError as e:
            raise PingjiaError(f"could not copy the database into {path.parent}: {e} (is there room?)") from None
        names = _members(home)
        part.unlink(missing_ok=True)
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz", compresslevel=6) as tar:
                files = {"gateway.db": _add(tar, db_copy, "gateway.db")}
                for n in names:
                    digest = _add(tar, home / n, n)
                    if digest:
                        files[n] = digest
                manifest = {"format": FORMAT, "hall": cfg.hall, "release": release(),
                            "created_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                            **held, "files": files}
                data = json.dumps(manifest, indent=2).encode()  # last: it lists what was written
                info = tarfile.TarInfo(MANIFEST)
                info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
                tar.addfile(info, io.BytesIO(data))
            with open(part, "rb+") as f:
                os.fsync(f.fileno())
        except OSError as e:
            raise PingjiaError(f"could not write the backup {path}: {e}") from None
        part.replace(path)
        _own_like(home, [path])  # root's backup of a hall is still the gateway's user's to keep and prune
    finally:
        part.unlink(missing_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    if out is None or folder.is_dir():
        _prune(folder, cfg.hall, KEEP if keep is None else keep)
    return {**manifest, "path": str(path), "bytes": path.stat().st_size}


def _prune(folder: Path, hall: str, keep: int) -> None:
    kept = sorted(folder.glob(f"pingjia-{hall}-*.tar.gz"))
    for old in kept[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)


def read_manifest(tar: tarfile.TarFile) -> dict:
    try:
        f = tar.extractfile(MANIFEST)
        manifest = json.loads(f.read(1 << 20)) if f else None
    except (KeyError, ValueError):
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("files"),
                                                                                            dict):
        raise PingjiaError("this is not a Pingjia backup (no backup.json of a format this release reads)")
    return manifest


def _safe_name(name: str) -> bool:
    """A name this release puts in a backup, and nothing else (no local token, no WAL, no
    broker configuration, nothing outside the home)."""
    p = Path(name)
    return (not p.is_absolute() and ".." not in p.parts and name == str(p)
            and (name in ("gateway.db", *FILES, *BROKER_FILES) or p.parts[0] in TREES and len(p.parts) > 1))


def restore(archive: Path, home: Path, force: bool = False) -> dict:
    """Put a backup into `home`. Every member is checked against the manifest and the
    database for integrity and schema before anything in `home` changes; what `home` held
    is moved aside to home/replaced-<time>/, never deleted. The gateway must be stopped."""
    home = Path(home)
    if os.geteuid() == 0 and home.exists() and home.stat().st_uid != 0:
        # the home is its user's: root writing into it would follow links that user made
        user = pwd.getpwuid(home.stat().st_uid).pw_name
        raise PingjiaError(f"{home} belongs to {user}: restore as that user "
                           f"(runuser -u {user} -- pingjia gateway restore ...)")
    lock = None
    if (home / "gateway.json").exists():
        lock = hold(home)
        _refuse_if_running(home)
        if not force:
            lock.close()
            raise PingjiaError(f"{home} holds a hall already: add --force to put the backup in its place "
                               f"(what is there now is moved to {home}/replaced-<time>/)")
    try:
        tar = tarfile.open(archive, "r:gz")
    except (OSError, tarfile.TarError) as e:
        raise PingjiaError(f"cannot read {archive}: {e}") from None
    home.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=home))
    try:
        with tar:
            manifest = read_manifest(tar)
            files = manifest["files"]
            if "gateway.db" not in files or not all(isinstance(n, str) and _safe_name(n) for n in files):
                raise PingjiaError("the backup's list of files is not one this release made")
            for member in tar.getmembers():
                if member.name == MANIFEST:
                    continue
                if member.name not in files or not member.isfile():
                    raise PingjiaError(f"the backup holds {member.name!r}, which its manifest does not list")
                tar.extract(member, staging, filter="data")
        for name, digest in files.items():
            f = staging / name
            if not f.is_file() or f.is_symlink() or sha256(f) != digest:
                raise PingjiaError(f"{name} in the backup is missing or not as it was written (SHA-256 differs): "
                                   f"the file is damaged or was changed")
        check_db(staging / "gateway.db")
        Config.load(staging)  # the settings must be ones this release reads
        aside = _move_aside(home, files)
        for name in files:
            target = home / name
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(staging / name, 0o600)
            (staging / name).replace(target)
        _own_like(home, [home / n for n in files])
        _sync_dirs(home, files)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if lock:
            lock.close()
    return {**{k: manifest.get(k) for k in ("hall", "release", "created_at", "ratings", "newest_rating_at",
                                            "schema")}, "home": str(home), "replaced": str(aside) if aside else None}


def check_db(path: Path) -> None:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        ok = conn.execute("PRAGMA integrity_check").fetchone()[0]
        level = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as e:
        raise PingjiaError(f"the backup's database cannot be read: {e}") from None
    finally:
        conn.close()
    if ok != "ok":
        raise PingjiaError(f"the backup's database fails SQLite's integrity check: {ok}")
    if level > schema.SCHEMA_VERSION:
        raise PingjiaError(f"the backup's database is at schema version {level}, newer than this release's "
                           f"{schema.SCHEMA_VERSION}: restore it with the release that made it ({level})")


def _move_aside(home: Path, files) -> Path | None:
    """What home holds of a hall now, moved into home/replaced-<time>/: whole folders
    (tls, firmware), the database with its WAL (a WAL left beside a restored database would
    be read into it), and of the broker's folder only its certificate (its queue stays)."""
    tops = {n.split("/")[0] for n in files if not n.startswith("broker/")}
    present = [n for n in sorted(tops | {"gateway.db-wal", "gateway.db-shm", *TREES, *BROKER_FILES})
               if (home / n).exists()]
    if not present:
        return None
    aside = home / f"replaced-{time.strftime('%Y%m%d-%H%M%S')}"
    aside.mkdir(mode=0o700)
    for n in present:
        (aside / n).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        (home / n).replace(aside / n)
    return aside


def _sync_dirs(home: Path, files) -> None:
    """The restored files and their folders on the disk before the restore says it is done."""
    for d in {home, *((home / n).parent for n in files)}:
        for f in [home / n for n in files if (home / n).parent == d]:
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _own_like(home: Path, paths) -> None:
    """Files a root restore made belong to the home's owner, the gateway's user."""
    if os.geteuid() != 0:
        return
    st = home.stat()
    for p in paths:
        for q in (p, *p.parents):
            if q == home or home not in q.parents:
                break
            os.lchown(q, st.st_uid, st.st_gid)


def _refuse_if_running(home: Path) -> None:
    """A gateway that holds no lock (an earlier release's) still answers on its port."""
    import httpx

    try:
        cfg = Config.load(home)
    except PingjiaError:
        return  # unreadable settings: the lock was free, and there is no port to ask
    host = "127.0.0.1" if cfg.api_host in ("0.0.0.0", "::", "") else cfg.api_host
    try:
        hall = httpx.get(f"http://{host}:{cfg.api_port}/api/v1/health", timeout=2).json().get("hall")
    except (httpx.HTTPError, ValueError, AttributeError):
        return
    if hall == cfg.hall:
        raise PingjiaError(f"the gateway of hall {hall} is running on {home}: stop it first "
                           f"(systemctl stop pingjia-gateway)")
