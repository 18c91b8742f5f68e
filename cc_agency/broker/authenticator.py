"""How the broker decides who sent a request, per process: tokens, passwords, their caches and the login guard.

- A token (Bearer, or as the Basic password) is looked up by its SHA-256 hash; a verified one is trusted from this
  process's cache for TOKEN_CACHE_TTL_S (cc_agency.auth_cache), so a revocation elsewhere takes effect within
  that time and one made here (DELETE /token) at once.
- A password: first the failures of the username and of the client address (blocked: 429), then the cache of
  recently verified passwords (keyed by an HMAC that includes the stored bcrypt hash, so a changed password misses
  at once), and only then the login guard (cc_agency.login_guard: failure recorded first, limits per username and per client address, a cap on
  concurrent bcrypt checks) and one bcrypt check.
"""
import threading
import time

from cc_agency import auth, login_guard
from cc_agency.auth_cache import PASSWORD_CACHE_TTL_S, CredentialKeys, TtlCache, token_cache_deadline
from cc_agency.db import USERS, now


class Principal:
    """An authenticated request: `user` (its document without the password hash) and, when a token was
    presented, that token's record (`token`: {hash, username, kind, expiresAt}), else None."""

    def __init__(self, user, token=None):
        self.user = user
        self.token = token

    @property
    def not_after(self):
        """The latest expiry a token minted for this request may have (None: no limit but its own validity)."""
        return self.token['expiresAt'] if self.token else None


class Authenticator:
    def __init__(self, auth_conf):
        self.auth_conf = auth_conf
        self.tokens = TtlCache()  # token hash -> (token record, user document)
        self.passwords = TtlCache()  # HMAC of (username, password, stored hash) -> True
        self.credential_keys = CredentialKeys()
        self.slots = login_guard.PasswordCheckSlots()

    def by_token(self, db, token, kinds=(auth.ACCESS,), username=None):
        """The Principal of a token of one of `kinds` (and of `username`, when given); None if it is not one."""
        hashed = auth.token_hash(token)
        entry = self.tokens.get(hashed, time.monotonic())
        if entry is None:
            record = auth.find_token(db, hashed)
            user = record and db[USERS].find_one({'username': record['username']}, {'passwordHash': 0})
            if not user:
                return None
            entry = (dict(record, hash=hashed), user)
            self.tokens.put(hashed, entry, token_cache_deadline(time.monotonic(), record['expiresAt'], now()))
        record, user = entry
        if record['kind'] not in kinds:
            return None
        if username is not None and record['username'] != username:  # a name is no secret: no constant-time compare
            return None
        return Principal(user, record)

    def by_password(self, db, username, password, address):
        """The Principal of a username and password (or a token as the password); None when they are wrong.
        Raises login_guard.Blocked (too many failures) or login_guard.Busy (no bcrypt slot in time)."""
        principal = self.by_token(db, password, username=username)
        if principal is not None:
            return principal
        login_guard.check_not_blocked(db, username, address, self.auth_conf)
        user = auth.find_user(db, username)
        stored_hash = auth.stored_hash_or_dummy(user, self.auth_conf.get('bcrypt_rounds', 12))
        cache_key = self.credential_keys.key(username, password, stored_hash)
        if user is not None and self.passwords.get(cache_key, time.monotonic()):
            return Principal(auth.public_user(user))
        attempt_id = login_guard.begin_attempt(db, username, address, self.auth_conf)
        try:
            with self.slots:
                matches = auth.password_matches(password, stored_hash)
        except login_guard.Busy:
            login_guard.cancel_attempt(db, attempt_id)  # never checked: no failure
            raise
        if not (matches and user is not None):
            return None  # the attempt's record stays: it is the failure
        login_guard.cancel_attempt(db, attempt_id)
        self.passwords.put(cache_key, True, time.monotonic() + PASSWORD_CACHE_TTL_S)
        return Principal(auth.public_user(user))

    def forget_token(self, hashed):
        self.tokens.drop(hashed)

    def forget_user_tokens(self, username):
        self.tokens.drop_where(lambda entry: entry[0]['username'] == username)


_creation_lock = threading.Lock()


def authenticator_of(app_extensions, key, auth_conf):
    """The app's one Authenticator, made on first use (the app factory stays as it is)."""
    found = app_extensions.get(key)
    if found is None:
        with _creation_lock:
            found = app_extensions.setdefault(key, Authenticator(auth_conf))
    return found
