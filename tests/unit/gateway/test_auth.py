"""Accounts' pieces in isolation: token expiry and revocation, the login throttle, the
password rules, what each role may do."""

import time

from gateway import auth
from gateway.data import accounts, open_db


def test_a_login_token_dies_at_its_expiry_and_with_its_account(tmp_path):
    db = open_db(tmp_path / "g.db")
    now = time.time()
    accounts.add_user(db, "ann", "viewer", [], auth.hash_password("a long password"), now)
    accounts.add_token(db, "h1", "ann", "login", None, now + 10, now)
    accounts.add_token(db, "h2", "ann", "api", "script", None, now)
    assert accounts.token_owner(db, "h1", now + 9)["role"] == "viewer"
    assert accounts.token_owner(db, "h1", now + 10) is None  # expired
    accounts.change(db, "ann", now, pw_hash="new")  # a new password ends logins, not API tokens
    assert accounts.token_owner(db, "h1", now) is None and accounts.token_owner(db, "h2", now) is not None
    accounts.change(db, "ann", now, disabled=1)
    assert accounts.token_owner(db, "h2", now) is None
    accounts.change(db, "ann", now, disabled=0)  # enabling again does not bring revoked tokens back
    assert accounts.token_owner(db, "h2", now) is None


def test_the_throttle_counts_failures_in_its_window_and_forgets_the_oldest_keys():
    t = auth.Throttle(limit=3, window_s=60, max_keys=2)
    for i in range(3):
        assert t.retry_after("a", 100 + i) == 0
        t.failed("a", 100 + i)
    assert t.retry_after("a", 103) == 58 and t.retry_after("a", 161) == 0
    t.failed("b", 100)
    t.failed("c", 100)
    assert "a" not in t.seen and len(t.seen) == 2  # bounded: a flood of names cannot grow it


def test_passwords_and_roles():
    h = auth.hash_password("a long password")
    assert h.startswith("$argon2id$") and auth.check_password(h, "a long password")
    assert not auth.check_password(h, "a long passworD") and not auth.check_password(None, "x")
    assert not auth.check_password("not a hash", "x")
    assert auth.password_problem("alice", "short") and auth.password_problem("alicealice", "AliceAlice")
    assert auth.password_problem("bob", "a long password") is None
    sup = auth.Principal("s", "supervisor", ("W01",))
    assert sup.acts_on("W01") and not sup.acts_on("W02") and not sup.can("accounts")
    assert not auth.Principal("t", "technician").can("read") and auth.Principal("a", "admin").acts_on("W9")
