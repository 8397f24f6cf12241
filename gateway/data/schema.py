"""The schema, versioned: PRAGMA user_version is the number of migrations applied, and
each start-up applies the ones a database lacks, in order, each in its own transaction.
A migration is appended, never edited: a hall's database upgrades in place."""

from __future__ import annotations

import sqlite_utils

from ..errors import PingjiaError
from ..protocol import BAD_LEVELS


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


def _accounts_and_work_orders(db: sqlite_utils.Database) -> None:
    """Version 3: people's accounts and their tokens, the audit log, and a work order
    (差评工单) for every bad review, each step of it recorded. The audit log and the
    steps are append-only: triggers refuse any update or delete, whoever asks.

    Every bad review already stored gets its work order, opened when the review arrived:
    the rules say each one is handled, and an upgrade must not lose one."""
    db.execute("""create table users (name text primary key, role text not null, windows text not null,
                  pw_hash text, disabled integer not null default 0, created_at real not null,
                  changed_at real not null)""")
    db.execute("""create table tokens (hash text primary key, user text not null references users(name),
                  kind text not null, label text, created_at real not null, expires_at real,
                  revoked_at real)""")
    db.execute("create index tokens_user on tokens (user)")
    db.execute("""create table audit (id integer primary key autoincrement, at real not null,
                  actor text not null, action text not null, target text, detail text)""")
    db.execute("""create table work_orders (id integer primary key autoincrement,
                  rating_id text not null unique references ratings(id), window text, staff_id text,
                  staff_name text, case_no text, item_code text, item_name text, level text not null,
                  reason text, opened_at real not null, state text not null, contacted_at real,
                  complex integer not null default 0, invalid_kind text, closed_at real, updated_at real not null,
                  alerted text not null default '', feedback_state text, feedback_attempts integer not null
                  default 0, feedback_error text, next_feedback_at real)""")
    db.execute("create index work_orders_state on work_orders (state, opened_at)")
    db.execute("create index work_orders_staff on work_orders (staff_id, opened_at)")
    db.execute("create index work_orders_feedback on work_orders (feedback_state, next_feedback_at) "
               "where feedback_state = 'pending'")
    db.execute("""create table work_order_steps (id integer primary key autoincrement,
                  order_id integer not null references work_orders(id), at real not null, actor text not null,
                  step text not null, note text, kind text)""")
    db.execute("create index work_order_steps_order on work_order_steps (order_id, id)")
    for table in ("audit", "work_order_steps"):
        for op in ("update", "delete"):
            db.execute(f"create trigger {table}_no_{op} before {op} on {table} "
                       f"begin select raise(abort, '{table} is append-only'); end")
    bad = ",".join(f"'{lv}'" for lv in sorted(BAD_LEVELS))
    db.execute(f"""insert into work_orders (rating_id, window, staff_id, staff_name, case_no, item_code,
                   item_name, level, reason, opened_at, state, updated_at)
                   select id, window, staff_id, staff_name, case_no, item_code, item_name, level, reason,
                   received_at, 'open', received_at from ratings
                   where level in ({bad}) and repeat_of is null and forward_state != 'held' order by received_at""")
    db.execute("""insert into work_order_steps (order_id, at, actor, step, note)
                  select id, opened_at, 'system', 'opened', 'opened when the gateway was upgraded'
                  from work_orders""")


def _outbox_rises(db: sqlite_utils.Database) -> None:
    """Version 4: how many heartbeats in a row a device's outbox has grown (or stayed
    above zero without shrinking): a device whose ratings are not getting out."""
    db.execute("alter table devices add column outbox_rises integer not null default 0")


def _summaries(db: sqlite_utils.Database) -> None:
    """Version 5: the statistics' summaries, kept current at ingest (summaries.py); the
    gateway fills them from the stored ratings at its next start. And the work orders
    newest first, as a console lists them."""
    from . import summaries  # here: the data package imports this module first

    summaries.create(db)
    db.execute("create index work_orders_opened on work_orders (opened_at)")
    db.execute("create index work_orders_window on work_orders (window, opened_at)")


def _cases_summaries(db: sqlite_utils.Database) -> None:
    """Version 6: the cases' summaries per staff member and per item (summaries.create_cases)."""
    from . import summaries

    summaries.create_cases(db)


def _firmware(db: sqlite_utils.Database) -> None:
    """Version 7: firmware builds kept for devices, and their rollouts (data/firmware.py)."""
    from . import firmware

    firmware.create(db)


def _case_sessions(db: sqlite_utils.Database) -> None:
    """Version 8: each case names the staff session it was completed in, so that a
    window's current case is found by that and the order cases were recorded, never by
    their times (a step of the box's clock backwards puts times out of order: clock.py);
    a window's sessions are found newest first. The cases of the sessions open now get
    theirs."""
    db.execute("alter table cases add column session_id integer")
    db.execute("create index cases_session on cases (session_id) where session_id is not null")
    db.execute("create index sessions_window_id on sessions (window, id)")  # hall.session_at: newest first
    for s in db.query("select id, window, started_at from sessions where ended_at is null"):
        db.execute("update cases set session_id = ? where window = ? and completed_at >= ?",
                   [s["id"], s["window"], s["started_at"]])


def _rating_parts(db: sqlite_utils.Database) -> None:
    """Version 9: a version-2 rating's itemised parts (JSON, part -> level), and their
    summaries (summaries.create_parts)."""
    from . import summaries

    db.execute("alter table ratings add column parts text")
    summaries.create_parts(db)


def _staff_photos(db: sqlite_utils.Database) -> None:
    """Version 10: staff photos as the tablets draw them (photos.py)."""
    from . import photos

    photos.create(db)


# schema version N is MIGRATIONS[:N]; append, never edit
MIGRATIONS = (_create, _held, _accounts_and_work_orders, _outbox_rises, _summaries, _cases_summaries, _firmware,
              _case_sessions, _rating_parts, _staff_photos)
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
