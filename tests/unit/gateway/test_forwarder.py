"""The forwarder's reading of a platform's reply, on a real store: only the ratings it
sent can be marked by the reply, whatever else the reply names."""

import time

import httpx

from gateway import protocol
from gateway.config import Config
from gateway.data import devices, forwarding, open_db, ratings
from gateway.forwarder import BREAKER_AFTER, Forwarder


def _store(db, n: int) -> list[dict]:
    creds = devices.register(db, "pj-0001", "W01")
    d = devices.get(db, "pj-0001")
    for seq in range(1, n + 1):
        msg = protocol.signed(bytes.fromhex(creds["key"]), "rating", {
            "dev": "pj-0001", "seq": seq, "level": "satisfied", "reason": [], "case": "",
            "ts": int(time.time() * 1000), "tsync": True, "boot": 1, "up": 1, "fw": "t"})
        ratings.store(db, protocol.parse_rating(protocol.encode(msg))[0], d, time.time(), 8 * 3600)
    return forwarding.due(db, time.time() + 1, 100)


def test_a_reply_cannot_mark_a_rating_it_was_not_sent(tmp_path):
    cfg = Config(home=tmp_path, platform_url="http://127.0.0.1:9")
    db = open_db(cfg.db_path)
    rows = _store(db, 3)
    fw = Forwarder(cfg)
    sent, other = rows[:2], rows[2]
    reply = {"results": [{"id": sent[0]["id"], "status": "accepted"},
                         {"id": sent[1]["id"], "status": "invalid", "error": "bad area"},
                         {"id": other["id"], "status": "invalid", "error": "never sent"},
                         {"id": "pj-0009:1", "status": "accepted"}]}
    fw._answer(sent, httpx.Response(200, json=reply))
    states = {r["id"]: r["forward_state"] for r in db.query("select id, forward_state from ratings")}
    assert states == {sent[0]["id"]: "forwarded", sent[1]["id"]: "dead", other["id"]: "pending"}


def test_the_breaker_opens_at_its_threshold(tmp_path):
    cfg = Config(home=tmp_path, platform_url="http://127.0.0.1:9")
    db = open_db(cfg.db_path)
    rows = _store(db, 1)
    fw = Forwarder(cfg)
    for n in range(1, BREAKER_AFTER + 1):
        fw._failed(rows, "HTTP 503")
        assert fw.state()["breaker_open"] is (n >= BREAKER_AFTER)
