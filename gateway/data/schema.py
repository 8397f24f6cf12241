"""The schema, versioned: PRAGMA user_version is the number of migrations applied, and
each start-up applies the ones a database lacks, in order, each in its own transaction.
A migration is appended, never edited: a hall's database upgrades in place."""

from __future__ import annotations

import sqlite_utils

from ..errors import PingjiaError


def _create(db: sqlite_utils.Database) -> None:
    """Version 1 of the schema: the first release's tables."""
    db.table("devices").create({
        "dev": str, "model": str, "window": str, "state": str, "key": str, "pw_hash": str,
        "prev_key": str, "prev_key_until": float, "fw": str, "created_at": float,
        "changed_at": float, "online": int, "status_at": float, "health": str, "health_at": float,
        "sync_at": float, "sync_boot": int, "sync_up": int, "clock_offset": float,
    }, pk="dev", if_not_exists=True)
    db.table("sessions").create({
        "id": int, "window": str, "staff_id": str, "staff_name": str,
        "started_at": float, "ended_at": float,
    }, pk="id", if_not_exists=True)
    db.table("sessions").create_index(["window", "started_at"], if_not_exists=True)
    db.table("cases").create({
        "serial": str, "window": str, "staff_id": str, "staff_name": str,
        "item_code": str, "item_name": str, "items": str, "completed_at": float, "rating_id": str,
    }, pk="serial", if_not_exists=True)
    db.table("cases").create_index(["window", "completed_at"], if_not_exists=True)
    db.table("ratings").create({
        "id": str, "dev": str, "seq": int, "level": str, "score": int, "reason": str,
        "case_no": str, "window": str, "staff_id": str, "staff_name": str,
        "item_code": str, "item_name": str, "items": str, "tag_source": str,
        "device_ts": int, "tsync": int, "boot": int, "up": int, "fw": str, "sig": str,
        "received_at": float, "rated_at": float, "clock": str, "repeat_of": str,
        "forward_state": str, "forwarded_at": float, "attempts": int,
        "next_attempt_at": float, "last_error": str, "solo": int,
    }, pk="id", if_not_exists=True)
    db.table("ratings").create_index(["forward_state", "next_attempt_at"], if_not_exists=True)
    db.table("ratings").create_index(["window", "rated_at"], if_not_exists=True)
    db.table("ratings").create_index(["staff_id", "rated_at"], if_not_exists=True)
    db.table("ratings").create_index(["rated_at"], if_not_exists=True)
    db.table("rejections").create({
        "id": int, "at": float, "reason": str, "dev": str, "topic": str,
        "detail": str, "payload": str,
    }, pk="id", if_not_exists=True)
    db.table("rejection_counts").create({"reason": str, "n": int, "last_at": float}, pk="reason",
                                  if_not_exists=True)


def _held(db: sqlite_utils.Database) -> None:
    """Version 2: a rating can be held for an admin (its ID taken by another rating, or
    its case completed at another window) instead of being refused."""
    db.execute("alter table ratings add column held text")
    db.execute("create index if not exists ratings_held on ratings (held) where held is not null")


MIGRATIONS = (_create, _held)  # schema version N is MIGRATIONS[:N]; append, never edit
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(db: sqlite_utils.Database) -> None:
    """Bring the schema to SCHEMA_VERSION (PRAGMA user_version), each step in its own
    transaction. A database of the first release (user_version 0, tables present) is at
    version 1."""
    conn = db.conn
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == 0 and "ratings" in db.table_names():
        version = 1
    if version > SCHEMA_VERSION:
        raise PingjiaError(f"the database is at schema version {version}, newer than this gateway's "
                           f"{SCHEMA_VERSION}: run the newer release")
    for step in range(version, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[step](db)
            conn.execute(f"PRAGMA user_version = {step + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
