"""Ingest against garbage: random bytes and mutated ratings on every topic it reads.
Nothing may escape, every message is answered (PUBACKed) and counted, and a good rating
in between is still stored. A unit test of the handler (no broker), by design: the
end-to-end bad-input test covers the same path through Mosquitto."""

import json
import random
import time
import types

from gateway import protocol
from gateway.config import Config
from gateway.data import open_db, rejections
from gateway.ingest import Ingest, LimitedLog
from gateway.registry import Registry


def message(topic: str, payload: bytes, mid: int):
    """What paho hands the ingest: a QoS 1 message, not a retained copy."""
    return types.SimpleNamespace(topic=topic, payload=payload, qos=1, mid=mid, retain=False)


def test_random_garbage_never_escapes_and_good_ratings_still_pass(tmp_path):
    rng = random.Random(11)
    cfg = Config(home=tmp_path, hall="fz", platform_url="")
    cfg.save()
    db = open_db(cfg.db_path)
    reg = Registry(cfg, db)
    reg._sync_broker = lambda: None  # no broker here
    creds = reg.add("pj-0001", "W01")
    key = bytes.fromhex(creds["key"])
    ing = Ingest(cfg)
    published, acked = [], []
    ing.client.publish = lambda topic, payload=b"", **kw: published.append((topic, payload))
    ing.client.ack = lambda mid, qos: acked.append(mid)

    good = protocol.signed(key, "rating", {"dev": "pj-0001", "seq": 1, "level": "satisfied", "reason": [], "case": "",
                                           "ts": int(time.time() * 1000), "tsync": True, "boot": 1, "up": 1, "fw": "t"})
    values = [None, True, -1, 0, 2**70, 1.5, "", "x" * 300, "\n", [], [1], {}, {"a": 1}, "very_satisfied", "中文"]
    topics = ["pingjia/fz/pj-0001/rating", "pingjia/fz/pj-0001/health", "pingjia/fz/pj-0001/status",
              "pingjia/fz/pj-0001/time/req", "pingjia/fz/pj-0002/rating", "pingjia/other/pj-0001/rating",
              "pingjia/fz/gateway/status", "pingjia/fz/pj-0001/cmd/reply", "nonsense"]
    msgs = []
    for i in range(3000):
        kind = rng.random()
        if kind < 0.3:
            payload = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 200)))
        else:
            m = dict(good)
            for _ in range(rng.randrange(1, 4)):
                field = rng.choice(list(m) + ["extra"])
                if rng.random() < 0.2:
                    m.pop(field, None)
                else:
                    m[field] = rng.choice(values)
            payload = json.dumps(m).encode()
        msgs.append(message(rng.choice(topics), payload, i))
    msgs.insert(1500, message(topics[0], protocol.encode(good), 99999))
    for i in range(0, len(msgs), 20):
        ing._acknowledge(ing._commit_group(msgs[i:i + 20]))

    assert sorted(acked) == sorted(m.mid for m in msgs)  # every message answered, none left hanging
    assert ing.counts["internal_error"] == 0 and ing.counts["commit_retries"] == 0
    assert db["ratings"].count == 1 and db["ratings"].get("pj-0001:1")["level"] == "satisfied"
    counts = rejections.counts(db)
    on = {t: sum(1 for m in msgs if m.topic == t) for t in topics}
    rejected_on = {r["topic"]: r["n"] for r in db.query("select topic, count(*) n from rejections group by topic")}
    assert counts["wrong_topic"] == on["nonsense"] + on["pingjia/other/pj-0001/rating"]
    assert rejected_on[topics[4]] == on[topics[4]]  # every rating from an unregistered device
    # every rating on the device's topic was stored, found a duplicate, or rejected
    assert ing.counts["stored"] + ing.counts["duplicate"] + rejected_on[topics[0]] == on[topics[0]]
    assert set(counts) <= {
        "not_json", "schema", "unsupported_version", "topic_mismatch", "wrong_topic", "unknown_device",
        "bad_signature", "replay", "unprocessable"}
    acks = [json.loads(p) for t, p in published if t.endswith("/ack")]
    assert any(a["seq"] == 1 and a["status"] == "stored" for a in acks)


def test_a_message_that_breaks_its_handler_is_fenced_off_from_its_group(tmp_path):
    cfg = Config(home=tmp_path, hall="fz", platform_url="")
    cfg.save()
    db = open_db(cfg.db_path)
    reg = Registry(cfg, db)
    reg._sync_broker = lambda: None
    key = bytes.fromhex(reg.add("pj-0001", "W01")["key"])
    ing = Ingest(cfg)
    acked = []
    ing.client.publish = lambda *a, **kw: None
    ing.client.ack = lambda mid, qos: acked.append(mid)

    def broken(d, h, now):  # stands for any bug a crafted message might hit
        ing.db.execute("update devices set fw = 'half-written' where dev = ?", [d["dev"]])
        raise OverflowError("boom")

    ing._health = broken
    ratings = [message("pingjia/fz/pj-0001/rating", protocol.encode(
        protocol.signed(key, "rating", {"dev": "pj-0001", "seq": seq, "level": "satisfied", "reason": [], "case": "",
                                        "ts": 1, "tsync": False, "boot": 1, "up": 1, "fw": "t"})), seq)
               for seq in (1, 2)]
    bad = message("pingjia/fz/pj-0001/health", b'{"v":1,"dev":"pj-0001"}', 50)
    ing._acknowledge(ing._commit_group([ratings[0], bad, ratings[1]]))
    assert sorted(acked) == [1, 2, 50]
    assert db["ratings"].count == 2
    assert rejections.counts(db) == {"unprocessable": 1}
    assert db["devices"].get("pj-0001")["fw"] is None  # its half-done write was rolled back


def test_a_flood_of_messages_that_break_their_handler_logs_a_few_lines(tmp_path, caplog):
    """Each such message is refused and counted; the log gets at most its minute's ration
    of tracebacks, however many arrive."""
    cfg = Config(home=tmp_path, hall="fz", platform_url="")
    cfg.save()
    db = open_db(cfg.db_path)
    reg = Registry(cfg, db)
    reg._sync_broker = lambda: None
    reg.add("pj-0001", "W01")
    ing = Ingest(cfg)
    ing.client.publish = lambda *a, **kw: None
    ing.client.ack = lambda mid, qos: None

    def broken(d, h, now):
        raise OverflowError("boom")
    ing._health = broken
    msgs = [message("pingjia/fz/pj-0001/health", b'{"v":1,"dev":"pj-0001"}', i) for i in range(500)]
    with caplog.at_level("WARNING", logger="pingjia.ingest"):
        for i in range(0, len(msgs), 50):
            ing._acknowledge(ing._commit_group(msgs[i:i + 50]))
    assert rejections.counts(db) == {"unprocessable": 500}
    assert len([r for r in caplog.records if "broke its handler" in r.getMessage()]) <= 2 * LimitedLog.PER_MINUTE
