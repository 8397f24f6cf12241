"""protocol/vectors/ checked on both sides: CPython (gateway) and MicroPython (device)."""

import hashlib
import hmac
import json

import pytest

from gateway import protocol
from tests.conftest import VECTORS, run_device_code

SIGNING = json.loads((VECTORS / "signing.json").read_text())["vectors"]
RATINGS = json.loads((VECTORS / "ratings.json").read_text())


@pytest.mark.parametrize("v", SIGNING, ids=[v["name"] for v in SIGNING])
def test_gateway_reproduces_canonical_bytes_and_signature(v):
    key = bytes.fromhex(v["key"])
    assert protocol.canonical(v["kind"], v["msg"]).decode() == v["canonical"]
    assert protocol.sign(key, v["kind"], v["msg"]) == v["sig"]
    # and the vector itself is right, by the standard library's own HMAC
    assert hmac.new(key, v["canonical"].encode(), hashlib.sha256).hexdigest() == v["sig"]
    protocol.verify(key, v["kind"], {**v["msg"], "sig": v["sig"]})


@pytest.mark.parametrize("v", SIGNING[:1], ids=["tampered"])
def test_gateway_refuses_a_tampered_message(v):
    msg = {**v["msg"], "sig": v["sig"], "seq": v["msg"]["seq"] + 1}
    with pytest.raises(protocol.Rejected) as e:
        protocol.verify(bytes.fromhex(v["key"]), v["kind"], msg)
    assert e.value.reason == "bad_signature"


def test_device_code_reproduces_every_vector(tmp_path):
    (tmp_path / "signing.json").write_text(json.dumps(SIGNING, ensure_ascii=False))
    out = run_device_code("""
import json, binascii, proto
for v in json.load(open("signing.json")):
    s = proto.Signer(binascii.unhexlify(v["key"]))
    msg = dict(v["msg"])
    ok_canon = proto.canonical(v["kind"], msg).decode() == v["canonical"]
    ok_sig = s.sign(v["kind"], msg) == v["sig"]
    msg["sig"] = v["sig"]
    verified = s.verify(v["kind"], msg)
    msg["sig"] = v["sig"][:-1] + ("0" if v["sig"][-1] != "0" else "1")
    forged = s.verify(v["kind"], msg)
    print(json.dumps([v["name"], ok_canon, ok_sig, verified, forged]))
""", tmp_path)
    assert len(out) == len(SIGNING)
    for name, ok_canon, ok_sig, verified, forged in out:
        assert (ok_canon, ok_sig, verified, forged) == (True, True, True, False), name


def test_valid_rating_vector_parses():
    r, _ = protocol.parse_rating(RATINGS["valid"].encode())
    assert (r.id, r.level, r.reason, r.v, r.parts) == ("pj-0001:42", "very_dissatisfied", ("attitude", "slow"), 1, ())


def test_a_version_2_rating_carries_its_parts_and_verifies():
    r, msg = protocol.parse_rating(RATINGS["valid_v2"].encode())
    assert (r.v, r.parts) == (2, (("efficiency", "very_dissatisfied"), ("staff", "satisfied")))
    key = bytes.fromhex(SIGNING[0]["key"])
    assert protocol.check(key, protocol.canonical("rating", msg), r.sig)
    # a part changed, added or taken away breaks the signature: parts are signed
    for parts in ({"staff": "very_satisfied", "efficiency": "very_dissatisfied"}, {"staff": "satisfied"},
                  {**msg["parts"], "item": "satisfied"}):
        assert not protocol.check(key, protocol.canonical("rating", {**msg, "parts": parts}), r.sig)
    # and so does calling it version 1 (its parts then unsigned and ignored)
    assert not protocol.check(key, protocol.canonical("rating", {**msg, "v": 1}), r.sig)


def test_a_version_1_rating_ignores_an_unsigned_parts_field():
    msg = json.loads(RATINGS["valid"])
    r, _ = protocol.parse_rating(json.dumps({**msg, "parts": {"staff": "very_satisfied"}}).encode())
    assert r.parts == () and r.v == 1


@pytest.mark.parametrize("v", RATINGS["invalid"], ids=[v["name"] for v in RATINGS["invalid"]])
def test_invalid_rating_vectors_are_rejected_with_their_reason(v):
    with pytest.raises(protocol.Rejected) as e:
        protocol.parse_rating(v["payload"].encode())
    assert e.value.reason == v["reason"]
