"""Broker users and tokens as stored: bcrypt password hashes, random tokens kept as their SHA-256 hash.

A password check costs one bcrypt hash (tens of milliseconds by design), so clients are expected to fetch a token
once (`GET /token`, `POST /login`) and send it on every call: a token check is one indexed lookup of its hash.
Tokens are of two kinds: access tokens (accepted as the Basic password, as seed-era clients send them, and as
`Authorization: Bearer`) and refresh tokens (POST /login), which only buy new access tokens. How a request is
authenticated, cached and throttled is cc_agency.broker.authenticator and cc_agency.login_guard.
"""
import hashlib
import secrets as token_source

import bcrypt

from cc_agency.db import USERS, TOKENS, now

TOKEN_BYTES = 32
ACCESS, REFRESH = 'access', 'refresh'  # token kinds: a refresh token only buys access tokens (POST /refreshtoken)
MAX_PASSWORD_BYTES = 72  # bcrypt's limit: longer passwords are refused, not silently cut
_dummy_hashes = {}  # rounds -> a hash to check against when the user does not exist


class PasswordError(ValueError):
    """A password that cannot be used (empty or longer than bcrypt allows)."""


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


def password_matches(password, stored_hash):
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


def access_token_valid_for_s(auth_conf):
    """POST /login and /refreshtoken: cc-agency 9.3's `broker.auth.jwt.access_token_expires`, else the seed's
    `tokens_valid_for_seconds` (which GET /token always uses)."""
    return auth_conf.get('jwt', {}).get('access_token_expires', auth_conf['tokens_valid_for_seconds'])


def refresh_token_valid_for_s(auth_conf):
    """POST /login: cc-agency 9.3's `broker.auth.jwt.refresh_token_expires`, else `tokens_valid_for_seconds`."""
    return auth_conf.get('jwt', {}).get('refresh_token_expires', auth_conf['tokens_valid_for_seconds'])


def token_hash(token):
    return hashlib.sha256(token.encode('utf-8', 'surrogatepass')).hexdigest()


def issue_token(db, username, valid_for_s, kind=ACCESS, not_after=None):
    """A new random token of `kind` (ACCESS or REFRESH) -> (token, expiresAt). Only its hash is stored.

    `not_after`: the expiry of the token the request was authenticated with, if any: a token never mints one that
    outlives it. Expired tokens are removed on the way (indexed).
    """
    token = token_source.token_urlsafe(TOKEN_BYTES)
    expires_at = now() + valid_for_s
    if not_after is not None:
        expires_at = min(expires_at, not_after)
    db[TOKENS].delete_many({'expiresAt': {'$lt': now()}})
    db[TOKENS].insert_one({'tokenHash': token_hash(token), 'username': username, 'kind': kind,
                           'expiresAt': expires_at})
    return token, expires_at


def find_token(db, hashed):
    """The stored record of a token hash that has not expired: {username, kind, expiresAt}; else None.
    Tokens of the seed era have no kind: they are access tokens."""
    record = db[TOKENS].find_one({'tokenHash': hashed}, {'_id': 0, 'username': 1, 'kind': 1, 'expiresAt': 1})
    if record is None or record['expiresAt'] <= now():
        return None
    record.setdefault('kind', ACCESS)
    return record


def revoke_token(db, hashed):
    return db[TOKENS].delete_one({'tokenHash': hashed}).deleted_count


def revoke_user_tokens(db, username):
    return db[TOKENS].delete_many({'username': username}).deleted_count


def find_user(db, username):
    """The user's document with its password hash, or None."""
    return db[USERS].find_one({'username': username})


def public_user(user):
    """The user's document as request handlers see it: without the password hash."""
    return {key: value for key, value in user.items() if key != 'passwordHash'}


def stored_hash_or_dummy(user, rounds):
    """What to check a password against: the user's hash, or for a user that does not exist a dummy of the same
    cost, so that both take as long."""
    return user['passwordHash'].encode('ascii') if user else _dummy_hash(rounds)
