"""Broker users and tokens: bcrypt password hashes, cheap token checks, blocking after failed logins.

A password check costs one bcrypt hash (tens of milliseconds by design), so clients are expected to fetch a token
once (`GET /token`) and send it on every call: a token check is one indexed lookup of its SHA-256 hash. Tokens are
accepted as the Basic password (seed-era clients) and as `Authorization: Bearer`. Failed logins are counted per
username whether or not the user exists, so blocking reveals nothing about which users exist.
"""
import hashlib
import secrets as token_source

import bcrypt
import pymongo

from cc_agency.db import USERS, TOKENS, LOGIN_FAILURES, now

TOKEN_BYTES = 32
MAX_PASSWORD_BYTES = 72  # bcrypt's limit: longer passwords are refused, not silently cut
_dummy_hashes = {}  # rounds -> a hash to check against when the user does not exist


class PasswordError(ValueError):
    """A password that cannot be used (empty or longer than bcrypt allows)."""


class AuthResult:
    """Outcome of one authentication attempt: `user` on success, else `blocked_for_s` or a plain failure."""

    def __init__(self, user=None, blocked_for_s=0):
        self.user = user
        self.blocked_for_s = blocked_for_s


def check_password_usable(password):
    if not password:
        raise PasswordError('the password must not be empty')
    if len(password.encode('utf-8')) > MAX_PASSWORD_BYTES:
        raise PasswordError('the password must not be longer than {} bytes (UTF-8)'.format(MAX_PASSWORD_BYTES))


def hash_password(password, rounds=12):
    check_password_usable(password)
    return bcrypt.hashpw(password.encode('utf-8'), bcrypt.gensalt(rounds)).decode('ascii')


def _dummy_hash(rounds):
    """A hash of the configured cost, so that checking an unknown user takes as long as a wrong password."""
    if rounds not in _dummy_hashes:
        _dummy_hashes[rounds] = bcrypt.hashpw(b'not a password', bcrypt.gensalt(rounds))
    return _dummy_hashes[rounds]


def _password_matches(password, stored_hash):
    """One bcrypt check, whatever the password; a password bcrypt cannot take never matches."""
    candidate = password.encode('utf-8', 'surrogatepass')
    usable = 0 < len(candidate) <= MAX_PASSWORD_BYTES
    return bcrypt.checkpw(candidate if usable else b'', stored_hash) and usable


def create_or_update_user(db, username, password, is_admin, rounds=12):
    """Insert the user, or replace its password and role; returns True when the user is new."""
    result = db[USERS].update_one(
        {'username': username},
        {'$set': {'passwordHash': hash_password(password, rounds), 'isAdmin': bool(is_admin)},
         '$setOnInsert': {'username': username, 'created': now()}},
        upsert=True,
    )
    db[TOKENS].delete_many({'username': username})  # a new password ends the old sessions
    return result.upserted_id is not None


def _token_hash(token):
    return hashlib.sha256(token.encode('utf-8', 'surrogatepass')).hexdigest()


def issue_token(db, username, valid_for_s):
    """A new random token; only its hash is stored. Expired tokens are removed on the way (indexed)."""
    token = token_source.token_urlsafe(TOKEN_BYTES)
    db[TOKENS].delete_many({'expiresAt': {'$lt': now()}})
    db[TOKENS].insert_one({'tokenHash': _token_hash(token), 'username': username, 'expiresAt': now() + valid_for_s})
    return token


def _user_for_token(db, token, username=None):
    record = db[TOKENS].find_one({'tokenHash': _token_hash(token)}, {'username': 1, 'expiresAt': 1})
    if record is None or record['expiresAt'] <= now():
        return None
    if username is not None and record['username'] != username:  # a name is no secret: no constant-time compare
        return None
    return db[USERS].find_one({'username': record['username']}, {'passwordHash': 0})


def _blocked_for_s(db, username, auth_conf):
    window_start = now() - auth_conf['block_for_seconds']
    failures = list(db[LOGIN_FAILURES].find(
        {'username': username, 'time': {'$gt': window_start}}, {'time': 1}
    ).sort('time', pymongo.DESCENDING).limit(auth_conf['num_login_attempts']))
    if len(failures) < auth_conf['num_login_attempts']:
        return 0
    # blocked until the oldest of the last N failures leaves the window
    return max(1, int(failures[-1]['time'] + auth_conf['block_for_seconds'] - now()) + 1)


def _record_failure(db, username, auth_conf):
    db[LOGIN_FAILURES].insert_one({'username': username, 'time': now()})
    db[LOGIN_FAILURES].delete_many({'time': {'$lt': now() - auth_conf['block_for_seconds']}})


def authenticate_password(db, username, password, auth_conf):
    """HTTP Basic: a valid token as password is checked first (cheap); otherwise bcrypt."""
    user = _user_for_token(db, password, username)
    if user is not None:
        return AuthResult(user)
    blocked_for_s = _blocked_for_s(db, username, auth_conf)
    if blocked_for_s:
        return AuthResult(blocked_for_s=blocked_for_s)
    user = db[USERS].find_one({'username': username})
    stored_hash = user['passwordHash'].encode('ascii') if user else _dummy_hash(auth_conf.get('bcrypt_rounds', 12))
    if _password_matches(password, stored_hash) and user is not None:
        user.pop('passwordHash')
        return AuthResult(user)
    _record_failure(db, username, auth_conf)
    return AuthResult()


def authenticate_bearer(db, token):
    return AuthResult(_user_for_token(db, token))
