"""The schema upgrades in place: a database the first release made (no user_version,
ratings in it) opens at the current version with every rating as it was; a newer one
is refused rather than misread; a migration that fails leaves the database untouched."""

import sqlite3
import time

import pytest
import sqlite_utils

from gateway import protocol
from gateway.data import devices, open_db, ratings, schema
from gateway.errors import PingjiaError


def _first_release_db(path) -> dict:
    """What release 1 left: its tables, user_version 0, a device and a stored rating."""
    db = sqlite_utils.Database(sqlite3.connect(str(path), isolation_level=None))
    schema._create(db)
    db.execute("create table meta (key text primary key, value text)")  # release 1 kept its version here
    db.execute("insert into meta values ('schema_version', '1')")
    now = time.time()
    db.execute("insert into devices (dev, model, window, state, key, pw_hash, created_at, changed_at, online) "
               "values ('pj-0001', 'five-button', 'W01', 'active', ?, 'x', ?, ?, 0)", ["ab" * 32, now, now])
    row = {"id": "pj-0001:1", "dev": "pj-0001", "seq": 1, "level": "dissatisfied", "score": 3, "reason": "slow",
           "case_no": "C-1", "window": "W01", "staff_id": "S1", "staff_name": "王芳", "tag_source": "case",
           "device_ts": int(now * 1000), "tsync": 1, "boot": 1, "up": 1, "fw": "0.1.0", "sig": "s" * 64,
           "received_at": now, "rated_at": now, "clock": "device", "forward_state": "forwarded",
           "forwarded_at": now, "attempts": 1, "next_attempt_at": now}
    db.execute(f"insert into ratings ({', '.join(row)}) values ({', '.join('?' * len(row))})", list(row.values()))
    db.conn.close()
    return row


def test_a_first_release_database_upgrades_in_place(tmp_path):
    path = tmp_path / "gateway.db"
    old = _first_release_db(path)
    db = open_db(path)
    assert db.conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
    row = db.conn.execute("select * from ratings where id = 'pj-0001:1'").fetchone()
    cols = [c[0] for c in db.conn.execute("select * from ratings").description]
    got = dict(zip(cols, row, strict=True))
    assert {k: got[k] for k in old} == old and got["held"] is None
    # and it takes new ratings, held ones too
    d = devices.get(db, "pj-0001")
    msg = protocol.signed(bytes.fromhex(d["key"]), "rating", {
        "dev": "pj-0001", "seq": 1, "level": "satisfied", "reason": [], "case": "", "ts": int(time.time() * 1000),
        "tsync": True, "boot": 2, "up": 1, "fw": "0.1.1"})
    status, stored = ratings.store(db, protocol.parse_rating(protocol.encode(msg))[0], d, time.time(), 8 * 3600)
    assert (status, stored["held"]) == ("stored", "seq_taken")
    db.conn.close()
    assert open_db(path).conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION  # idempotent


def test_a_database_from_a_newer_release_is_refused(tmp_path):
    path = tmp_path / "gateway.db"
    conn = sqlite3.connect(str(path))
    conn.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(PingjiaError, match="newer"):
        open_db(path)


def test_a_failing_migration_changes_nothing(tmp_path, monkeypatch):
    path = tmp_path / "gateway.db"
    _first_release_db(path)

    def broken(db):
        db.execute("alter table ratings add column half_done text")
        raise RuntimeError("disk trouble")
    monkeypatch.setattr(schema, "MIGRATIONS", (schema._create, broken))
    with pytest.raises(RuntimeError):
        open_db(path)
    conn = sqlite3.connect(str(path))
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    assert "half_done" not in [c[1] for c in conn.execute("pragma table_info(ratings)")]


def test_a_database_of_the_release_before_work_orders_upgrades_with_every_bad_review_given_its_order(tmp_path):
    """tests/data/release-0.1.0.db: made by that release's gateway, with real ratings from
    real-firmware devices (8, 3 of them bad reviews)."""
    import shutil
    from pathlib import Path

    from gateway.data import workorders

    path = tmp_path / "gateway.db"
    shutil.copy(Path(__file__).parents[2] / "data" / "release-0.1.0.db", path)
    raw = sqlite3.connect(str(path))
    raw.row_factory = sqlite3.Row
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 2
    before = {r["id"]: dict(r) for r in raw.execute("select * from ratings")}
    devices_before = [dict(r) for r in raw.execute("select * from devices order by dev")]
    raw.close()
    db = open_db(path)
    assert db.conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
    after = {r["id"]: r for r in db.query("select * from ratings")}
    old_columns = next(iter(before.values())).keys()
    # every rating exactly as it was; what later migrations added is empty (a version-1 rating has no parts)
    assert {k: {c: r[c] for c in old_columns} for k, r in after.items()} == before and len(after) == 8
    assert all(r["parts"] is None for r in after.values())
    assert [{k: r[k] for k in devices_before[0]} for r in db.query("select * from devices order by dev")] == \
        devices_before
    orders = workorders.listed(db, None, None, None, None, None)
    bad = sorted(rid for rid, r in before.items() if r["level"] in protocol.BAD_LEVELS)
    assert sorted(o["rating_id"] for o in orders) == bad and len(bad) == 3
    for o in orders:
        r = before[o["rating_id"]]
        assert (o["state"], o["opened_at"], o["window"], o["staff_id"], o["case_no"], o["reason"]) == \
               ("open", r["received_at"], r["window"], r["staff_id"], r["case_no"], r["reason"])
        assert [s["step"] for s in workorders.steps(db, o["id"])] == ["opened"]
    # and the upgraded hall works: a step is taken, and the logs refuse to be rewritten
    done = workorders.step(db, orders[0]["id"], "accept", "admin", time.time())
    assert done["state"] == "accepted"
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("delete from work_order_steps")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("update work_order_steps set actor = 'someone else'")
    db.execute("insert into audit (at, actor, action) values (1, 'a', 'b')")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("update audit set actor = 'x'")


def test_version_5_summaries_are_remade_per_staff_and_item_at_the_next_start(tmp_path):
    from gateway.data import hall, summaries

    path = tmp_path / "gateway.db"
    db = sqlite_utils.Database(sqlite3.connect(str(path), isolation_level=None))
    for step in schema.MIGRATIONS[:5]:
        step(db)
    db.execute("PRAGMA user_version = 5")
    now = time.time()
    db.execute("insert into cases (serial, window, staff_id, staff_name, item_code, item_name, items, completed_at) "
               "values ('C-1', 'W01', 'S1', '王芳', 'A1', '营业执照', '[]', ?)", [now])
    db.execute("insert into summary_cases values ('2026-01-01', 'W01', 1, 0)")  # version 5's shape
    db.execute("insert into summary_meta values ('offset_s', '28800')")
    db.conn.close()
    db = open_db(path)
    summaries.ensure(db, 28800)  # the gateway's start: the meta was cleared, so it rebuilds
    share = hall.rated_share(db, None, None, (None, None), "item")
    assert share["items"] == [{"item_code": "A1", "item_name": "营业执照", "cases": 1, "rated": 0, "share": 0.0}]
    assert [r["staff_id"] for r in hall.rated_share(db, None, None, (None, None), "staff")["staff"]] == ["S1"]
