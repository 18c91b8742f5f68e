"""Password rules of cc_agency.auth that need no database: bcrypt's 72-byte limit, one hash per check."""
import time

import bcrypt
import pytest

from cc_agency import auth


def test_hash_and_match():
    stored = auth.hash_password('secret', rounds=4).encode()
    assert auth.password_matches('secret', stored)
    assert not auth.password_matches('Secret', stored)


@pytest.mark.parametrize('password', ['', 'x' * 73, 'ä' * 37])
def test_unusable_passwords_are_refused_when_set(password):
    with pytest.raises(auth.PasswordError):
        auth.hash_password(password, rounds=4)


def test_72_bytes_are_usable_and_not_cut():
    password = 'p' * 72
    stored = auth.hash_password(password, rounds=4).encode()
    assert auth.password_matches(password, stored)
    assert not auth.password_matches(password[:71], stored)


@pytest.mark.parametrize('password', ['', 'x' * 100, '\udc80'])
def test_passwords_bcrypt_cannot_take_never_match_and_never_raise(password):
    stored = bcrypt.hashpw(b'', bcrypt.gensalt(4))  # even against the hash of the empty password
    assert not auth.password_matches(password, stored)


def test_unknown_users_cost_a_hash_of_the_configured_rounds():
    """Checking a user that does not exist must take as long as a wrong password (no user enumeration by time)."""
    fast, slow = auth._dummy_hash(4), auth._dummy_hash(10)
    assert fast.startswith(b'$2b$04$') and slow.startswith(b'$2b$10$')
    t0 = time.perf_counter()
    auth.password_matches('guess', slow)
    slow_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    auth.password_matches('guess', fast)
    assert slow_s > 4 * (time.perf_counter() - t0)
