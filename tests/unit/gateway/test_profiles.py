"""Province profiles: the exact records they make (protocol/vectors/profiles.json), their
own checks, and request signing."""

import json

import pytest

from gateway.province import HmacSha256Signer, Profile, ProfileError, signer
from tests.conftest import VECTORS

V = json.loads((VECTORS / "profiles.json").read_text())
CASES = [(c, p) for c in V["cases"] for p in ("national", "provincial")]


@pytest.mark.parametrize("case,name", CASES, ids=[f"{p}-{c['neutral']['id']}" for c, p in CASES])
def test_profile_makes_exactly_the_vector_record(case, name):
    profile = Profile.load(name)
    out = profile.record(case["neutral"], V["settings"], V["timezone"])
    assert out == case["expected"][name]
    assert profile.problems(out) == []


def test_the_two_profiles_number_satisfaction_in_opposite_directions():
    by_level = {c["neutral"]["level"]: c["expected"] for c in V["cases"]}
    assert by_level["very_satisfied"]["national"]["满意度代码"] == 1
    assert by_level["very_satisfied"]["provincial"]["satisfaction"] == "5"
    assert by_level["very_dissatisfied"]["national"]["满意度代码"] == 5
    assert by_level["very_dissatisfied"]["provincial"]["satisfaction"] == "1"


def test_checks_catch_what_a_platform_would_refuse():
    p = Profile.load("provincial")
    good = V["cases"][0]["expected"]["provincial"]
    assert p.problems({**good, "satisfaction": "6"}) and p.problems({**good, "projectNo": ""})
    assert p.problems({k: v for k, v in good.items() if k != "assessTime"})


def test_a_missing_hall_setting_and_an_unknown_profile_say_so():
    p = Profile.load("national")
    with pytest.raises(ProfileError, match="area_code"):
        p.record(V["cases"][0]["neutral"], {}, "Asia/Shanghai")
    with pytest.raises(ProfileError, match="known: national, provincial"):
        Profile.load("atlantis")


def test_request_signature_round_trip_and_tampering():
    s = signer(Profile.load("national"), "app-1", "secret-1")
    assert isinstance(s, HmacSha256Signer)
    body = b'{"records":[]}'
    h = {k.lower(): v for k, v in s.headers("POST", "/api/v1/evaluations", body).items()}
    assert h["x-app-key"] == "app-1" and len(h["x-nonce"]) == 32
    assert s.check("POST", "/api/v1/evaluations", body, h)
    assert not s.check("POST", "/api/v1/evaluations", body + b" ", h)
    assert not HmacSha256Signer("app-1", "other").check("POST", "/api/v1/evaluations", body, h)
