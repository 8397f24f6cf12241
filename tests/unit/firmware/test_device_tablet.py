"""The tablet's device code under the real MicroPython unix port: its outbox records (format
2) carry several reasons and the itemised parts into a rating the gateway verifies; a tablet
refuses a five-button build; taps closer than the minimum gap are one."""

import json

import pytest

from gateway.protocol import Rejected, parse_rating, verify
from tests.conftest import run_device_code

KEY = "11" * 32

RECORDS = f"""
import json, binascii
import proto, records, tablet_records
s = proto.Signer(binascii.unhexlify({KEY!r}))
head = records.header(3, "0.1.0")
cases = [
    tablet_records.encode(4, [2, 5], {{"staff": 1, "item": 4}}, 1796000000000, 1, 5000, "C-1"),
    tablet_records.encode(5, [-1], {{"channel": 3}}, 1796000000001, 1, 5001, "C-2"),
    tablet_records.encode(1, [], {{}}, 1796000000002, 0, 5002, ""),
    records.encode(4, 2, 1796000000003, 1, 5003, "C-4"),
]
for i, rec in enumerate(cases):
    msg = records.decode("pj-0001", i + 1, rec, head)
    print(json.dumps([rec.decode(), s.signed("rating", msg)]))
"""


def test_tablet_records_become_ratings_the_gateway_verifies():
    out = run_device_code(RECORDS, ".")
    (r1, m1), (r2, m2), (r3, m3), (r4, m4) = out
    assert r1 == "T4,2+5,1796000000000,1,5000,item:4+staff:1,C-1"
    assert m1["reason"] == ["slow", "commitment"] and m1["parts"] == {"item": "dissatisfied",
                                                                       "staff": "very_satisfied"}
    assert m1["v"] == 2 and m1["level"] == "dissatisfied"
    assert m2["reason"] == ["none"] and m2["parts"] == {"channel": "basically_satisfied"}  # the timeout's
    assert m3["reason"] == [] and "parts" not in m3 and m3["v"] == 1  # nothing itemised: a plain rating
    assert m4["reason"] == ["slow"] and "parts" not in m4 and m4["v"] == 1  # the five-button's, as before
    key = bytes.fromhex(KEY)
    for m in (m1, m2, m3, m4):
        parse_rating(json.dumps(m).encode())
        verify(key, "rating", m)  # raises on a bad signature
    rating, _ = parse_rating(json.dumps(m1).encode())
    assert rating.parts == (("item", "dissatisfied"), ("staff", "very_satisfied"))
    # the signature covers the parts: one changed on the way is a forgery
    with pytest.raises(Rejected, match="bad_signature"):
        verify(key, "rating", {**m1, "parts": {"item": "very_satisfied", "staff": "very_satisfied"}})
    with pytest.raises(Rejected):  # and parts the gateway does not know are refused, signed or not
        parse_rating(json.dumps({**m1, "parts": {"mood": "satisfied"}}).encode())


MANIFEST = """
import json
import staging

def manifest(model, writes):
    files = {"app.mpy": "a" * 64}
    m = {"firmware": "pingjia-evaluator", "files": files, "boot": {}, "content_hash": staging.content_hash(files),
         "outbox": {"reads": [1, 2], "writes": writes}}
    if model:
        m["model"] = model
    return m

for mine, theirs, writes in (("tablet", "five-button", 1), ("tablet", None, 1), ("five-button", "tablet", 2),
                             ("tablet", "tablet", 2), ("five-button", "five-button", 1)):
    m = manifest(theirs, writes)
    try:
        staging.check_manifest(m, m["content_hash"], mine)
        print(json.dumps([mine, theirs, "ok"]))
    except staging.UpdateError as e:
        print(json.dumps([mine, theirs, str(e)]))
"""


def test_a_device_takes_only_its_own_models_build(tmp_path):
    out = {(a, b): r for a, b, r in run_device_code(MANIFEST, tmp_path)}
    assert out[("tablet", "five-button")] == "a build for the five-button model"
    assert out[("tablet", None)] == "a build for the five-button model"  # builds before the tablet: five-button
    assert out[("five-button", "tablet")] == "a build for the tablet model"
    assert out[("tablet", "tablet")] == "ok" and out[("five-button", "five-button")] == "ok"


TOUCH = """
import json
from touch import Touch, QUEUE
t = Touch(250)
got = [t.accept(10, 10, 1000), t.accept(12, 11, 1100), t.accept(300, 200, 1300)]
for i in range(QUEUE + 2):
    got.append(t.accept(i, i, 2000 + 300 * i))
print(json.dumps([got, t.ignored, QUEUE]))
"""


def test_taps_inside_the_gap_are_one_and_the_queue_is_bounded(tmp_path):
    got, ignored, queue = run_device_code(TOUCH, tmp_path)[0]
    assert got[:3] == [True, False, True]  # a bounce 100 ms after a tap is the same tap
    assert got[3:] == [True] * (queue - 2) + [False] * 4  # two waiting already: the rest beyond the queue
    assert ignored == 5
