"""What a restore takes: only a backup exactly as it was written, only into its home; and
how many backups and logs the box keeps."""

import io
import json
import sqlite3
import tarfile

import pytest

from gateway import backup
from gateway.config import Config
from gateway.data import open_db, schema
from gateway.errors import PingjiaError
from gateway.upkeep import roll_log


@pytest.fixture
def archive(tmp_path):
    cfg = Config(home=tmp_path / "home", hall="bk")
    cfg.save()
    open_db(cfg.db_path).conn.close()
    (cfg.home / "tls").mkdir()
    (cfg.home / "tls" / "ca.key").write_text("KEY")
    return backup.backup(cfg, tmp_path / "b.tar.gz")


def rewrite(src, dst, change):
    """A copy of the archive at src with change(name, data) -> [(name, data), ...] applied to each member."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w:gz") as tout:
        for m in tin.getmembers():
            for name, data in change(m.name, tin.extractfile(m).read()):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tout.addfile(info, io.BytesIO(data))
    return dst


def test_a_backup_restores_into_an_empty_home(archive, tmp_path):
    out = backup.restore(archive["path"], tmp_path / "new")
    assert out["hall"] == "bk" and out["replaced"] is None
    assert (tmp_path / "new" / "tls" / "ca.key").read_text() == "KEY"
    assert (tmp_path / "new" / "gateway.db").stat().st_mode & 0o777 == 0o600


def test_a_changed_byte_anywhere_is_refused_before_the_home_changes(archive, tmp_path):
    def flip(name, data):
        if name == "tls/ca.key":
            data = b"KEX"
        return [(name, data)]
    bad = rewrite(archive["path"], tmp_path / "bad.tar.gz", flip)
    with pytest.raises(PingjiaError, match="SHA-256 differs"):
        backup.restore(bad, tmp_path / "new")
    assert not (tmp_path / "new" / "gateway.json").exists()


@pytest.mark.parametrize("evil", ["../evil", "tls/../../evil", "/tmp/evil"])
def test_a_member_outside_the_manifest_or_the_home_is_refused(archive, tmp_path, evil):
    def smuggle(name, data):
        out = [(name, data)]
        if name == "gateway.json":
            out.append((evil, b"x"))
        return out
    bad = rewrite(archive["path"], tmp_path / "bad.tar.gz", smuggle)
    with pytest.raises(PingjiaError, match="does not list"):
        backup.restore(bad, tmp_path / "deep" / "new")
    assert not (tmp_path / "deep" / "evil").exists() and not (tmp_path / "evil").exists()

    def listed(name, data):  # the manifest itself names it
        if name == "backup.json":
            m = json.loads(data)
            m["files"][evil] = "0" * 64
            data = json.dumps(m).encode()
        return [(name, data)] + ([(evil, b"x")] if name == "gateway.json" else [])
    bad = rewrite(archive["path"], tmp_path / "bad2.tar.gz", listed)
    with pytest.raises(PingjiaError, match="not one this release made"):
        backup.restore(bad, tmp_path / "deep" / "new")


def test_only_the_files_a_backup_holds_are_restored(archive, tmp_path):
    def token(name, data):  # a backup made to plant a token the gateway would accept
        if name == "backup.json":
            m = json.loads(data)
            m["files"]["local.token"] = backup.hashlib.sha256(b"planted").hexdigest()
            data = json.dumps(m).encode()
        return [(name, data)] + ([("local.token", b"planted")] if name == "gateway.json" else [])
    bad = rewrite(archive["path"], tmp_path / "bad.tar.gz", token)
    with pytest.raises(PingjiaError, match="not one this release made"):
        backup.restore(bad, tmp_path / "new")
    assert not (tmp_path / "new" / "local.token").exists()


def test_root_restores_only_into_a_home_of_its_own(archive, tmp_path):
    import os
    if os.geteuid() != 0:
        pytest.skip("only root can be refused this")
    home = tmp_path / "theirs"
    home.mkdir()
    os.chown(home, 65534, 65534)  # nobody's home: root writing there would follow its links
    with pytest.raises(PingjiaError, match="restore as that user"):
        backup.restore(archive["path"], home)


def test_not_a_backup_and_a_newer_schema_are_refused(archive, tmp_path):
    (tmp_path / "junk.tar.gz").write_bytes(b"not a tar")
    with pytest.raises(PingjiaError, match="cannot read"):
        backup.restore(tmp_path / "junk.tar.gz", tmp_path / "new")

    def newer(name, data):
        if name == "gateway.db":
            db = tmp_path / "x.db"
            db.write_bytes(data)
            c = sqlite3.connect(db)
            c.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION + 1}")
            c.close()
            data = db.read_bytes()
        return [(name, data)]
    bad = rewrite(archive["path"], tmp_path / "newer.tar.gz", newer)

    def resign(name, data):  # the manifest's hash made to match, as someone who knows the format would
        if name == "backup.json":
            m = json.loads(data)
            with tarfile.open(bad) as t:
                m["files"]["gateway.db"] = backup.hashlib.sha256(t.extractfile("gateway.db").read()).hexdigest()
            data = json.dumps(m).encode()
        return [(name, data)]
    bad = rewrite(bad, tmp_path / "newer2.tar.gz", resign)
    with pytest.raises(PingjiaError, match="newer than this release"):
        backup.restore(bad, tmp_path / "new")


def test_a_home_with_a_hall_is_replaced_only_with_force_and_kept_aside(archive, tmp_path):
    home = tmp_path / "home"
    with pytest.raises(PingjiaError, match="--force"):
        backup.restore(archive["path"], home)
    (home / "gateway.db-wal").write_bytes(b"stale")
    out = backup.restore(archive["path"], home, force=True)
    aside = tmp_path / "home" / out["replaced"].rsplit("/", 1)[1]
    assert (aside / "gateway.db-wal").read_bytes() == b"stale" and not (home / "gateway.db-wal").exists()
    assert (aside / "tls" / "ca.key").exists() and (home / "tls" / "ca.key").exists()


def test_the_folder_keeps_the_newest_backups(tmp_path):
    cfg = Config(home=tmp_path / "home", hall="bk")
    cfg.save()
    open_db(cfg.db_path).conn.close()
    folder = cfg.home / "backups"
    folder.mkdir()
    for i in range(5):
        (folder / f"pingjia-bk-2026010{i}-000000.tar.gz").write_bytes(b"")
    backup.backup(cfg, keep=3)
    kept = sorted(p.name for p in folder.iterdir())
    assert len(kept) == 3 and "pingjia-bk-20260104-000000.tar.gz" in kept and kept[-1].startswith("pingjia-bk-2026")
    assert "pingjia-bk-20260102-000000.tar.gz" not in kept


def test_a_log_rolls_over_at_its_size_keeping_so_many(tmp_path):
    log = tmp_path / "mosquitto.log"
    for i in range(5):
        log.write_text(f"{i}" * 10)
        assert roll_log(log, max_bytes=10, kept=3)
    assert not roll_log(log, max_bytes=10, kept=3)  # nothing written since
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mosquitto.log.1", "mosquitto.log.2", "mosquitto.log.3"]
    assert (tmp_path / "mosquitto.log.1").read_text() == "4" * 10 and (tmp_path / "mosquitto.log.3").read_text() == \
        "2" * 10
