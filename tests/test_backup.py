"""Backups of a busy hall, and a restore under one: `pingjia gateway backup` while citizens
press gives one consistent moment of the database; the hall, its gateway stopped and its
database lost, is restored from a backup and goes on, every pressed rating stored and
forwarded once."""

import json
import signal
import sqlite3
import subprocess
import sys
import tarfile
import threading

from simulator.harness import wait_until


def pingjia(*args, check=True, timeout=300):
    p = subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert p.returncode == 0, p.stdout + p.stderr
    return p


def db_in(archive, tmp_path, name):
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("backup.json"))
        tar.extract("gateway.db", tmp_path / name, filter="data")
    return manifest, sqlite3.connect(tmp_path / name / "gateway.db")


def test_a_backup_under_ingest_is_one_moment_and_a_restore_loses_nothing(hall_factory, tmp_path):
    hall = hall_factory(devices=3)
    home = hall.cfg.home
    stop, pressed, errors = threading.Event(), [], []
    threads = hall.keep_rating(stop, pressed, errors)
    wait_until(lambda: len(pressed) >= 15, 60, what="ratings before the backup")

    out = json.loads(pingjia("gateway", "backup", "--home", str(home), "--out", str(tmp_path / "b1.tar.gz")).stdout)
    assert out["hall"] == "test" and out["ratings"] >= 10 and (tmp_path / "b1.tar.gz").stat().st_mode & 0o077 == 0
    manifest, db = db_in(tmp_path / "b1.tar.gz", tmp_path, "b1")
    assert manifest["ratings"] == out["ratings"] and "tls/ca.key" in manifest["files"]
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # one moment: each rating and what the same transaction wrote with it are both there, or neither
    counted = db.execute("select count(*) from ratings where repeat_of is null and held is null").fetchone()[0]
    assert db.execute("select coalesce(sum(n), 0) from summary_month").fetchone()[0] == counted
    rated_cases = db.execute("select count(*) from cases where rating_id is not null").fetchone()[0]
    assert rated_cases == db.execute("select count(*) from ratings where tag_source = 'case' and repeat_of is null "
                                     "and held is null").fetchone()[0]
    in_backup = {r[0] for r in db.execute("select id from ratings")}
    assert in_backup <= set(hall.stored_rows())

    # a restore over a running gateway is refused
    p = pingjia("gateway", "restore", str(tmp_path / "b1.tar.gz"), "--home", str(home), "--force", check=False)
    assert p.returncode == 1 and "stop it first" in p.stderr
    # and so is a second gateway on the same home
    p = pingjia("gateway", "run", "--home", str(home), check=False, timeout=30)
    assert p.returncode == 1 and "a gateway is running" in p.stderr, p.stderr

    # the gateway stops (devices keep pressing into their flash), is backed up, and its disk is lost
    hall.gateway.send_signal(signal.SIGTERM)
    hall.gateway.wait(20)
    pingjia("gateway", "backup", "--home", str(home), "--out", str(tmp_path / "b2.tar.gz"))
    for f in ("gateway.db", "gateway.db-wal", "gateway.db-shm", "gateway.json"):
        (home / f).unlink(missing_ok=True)
    restored = json.loads(pingjia("gateway", "restore", str(tmp_path / "b2.tar.gz"), "--home", str(home)).stdout)
    assert restored["hall"] == "test" and restored["ratings"] >= out["ratings"]
    hall.start_gateway()
    wait_until(lambda: len(pressed) >= len(in_backup) + 15, 90, what="ratings after the restore")
    stop.set()
    for t in threads:
        t.join(60)
    assert not errors, errors
    hall.wait_drained(pressed)
    summary = hall.summary(pressed)
    assert summary == {"pressed": len(pressed), "stored": len(pressed), "forwarded": len(pressed), "duplicates": 0,
                       "lost": 0, "mistagged": 0, "itemised": 0}, summary
