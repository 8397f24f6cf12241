"""The gateway's durable store: one SQLite file in WAL mode. Every SQL statement the
gateway runs lives in this package, one module per table family:

    schema.py      the tables, and the ordered migrations run at start-up
    devices.py     the registry: credentials, window, health, time sync
    hall.py        staff sessions and completed cases
    ratings.py     storing a verified rating (idempotent by rating ID), and the views
    forwarding.py  the forwarder's outbox: due ratings, outcomes, dead letters
    rejections.py  refused messages, counted by reason

Every write that a message or an ack depends on is committed (synchronous=FULL) before
the gateway answers. Several writes that belong together go in one transaction().
"""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
from pathlib import Path

import sqlite_utils

from . import schema

_checked: set[str] = set()
_savepoints = itertools.count()


def open_db(path: Path | str) -> sqlite_utils.Database:
    path = Path(path)
    # The database holds every device's signing key: only the gateway's user may read it.
    # SQLite gives the WAL and shared-memory files it makes the database file's mode.
    path.touch(mode=0o600)
    for f in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if f.exists() and f.stat().st_mode & 0o077:
            f.chmod(0o600)
    # isolation_level None: no transaction begins behind our back; transaction() says where
    conn = sqlite3.connect(str(path), timeout=10, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=10000")
    db = sqlite_utils.Database(conn)
    if str(path) not in _checked:
        schema.migrate(db)
        _checked.add(str(path))
    return db


def open_readonly(path: Path | str) -> sqlite_utils.Database:
    """The database for looking only (the doctor, a backup): no migration, no write."""
    conn = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True, timeout=10, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=10000")
    return sqlite_utils.Database(conn)


@contextlib.contextmanager
def transaction(db: sqlite_utils.Database):
    """All the writes inside commit together or not at all; nested, a savepoint.

    Written here rather than taken from sqlite-utils' atomic(), which opens with a
    deferred BEGIN: in WAL mode a transaction that reads and then writes fails with
    SQLITE_BUSY at once if another connection (the ingest, the forwarder, the API) wrote
    in between, whatever the busy timeout. BEGIN IMMEDIATE takes the write lock first,
    and waits for it."""
    conn = db.conn
    if conn.in_transaction:
        name = f"sp{next(_savepoints)}"
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield db
        except BaseException:
            if conn.in_transaction:
                conn.execute(f"ROLLBACK TO {name}")
                conn.execute(f"RELEASE {name}")
            raise
        conn.execute(f"RELEASE {name}")
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def one(db: sqlite_utils.Database, sql: str, args=()) -> dict | None:
    """The first row of a query as a dict (plain sqlite3: some callers are on the ingest path)."""
    cur = db.conn.execute(sql, list(args))
    row = cur.fetchone()
    return dict(zip([c[0] for c in cur.description], row, strict=True)) if row else None


def rows(db: sqlite_utils.Database, sql: str, args=()) -> list[dict]:
    return list(db.query(sql, list(args)))


def where(*conditions: tuple[str, object]) -> tuple[str, list]:
    """' where ...' for the conditions whose value is not None (each a clause with one ?,
    and its value), and their arguments; '' when none is."""
    kept = [(clause, value) for clause, value in conditions if value is not None]
    return (" where " + " and ".join(c for c, _ in kept)) if kept else "", [v for _, v in kept]
