"""Short-lived in-process caches of verified credentials, so that a repeated login costs no database round trip
(tokens) and no bcrypt (passwords). Pure: the clock is passed in, nothing here does I/O.

Two uses in the broker (cc_agency.broker.authenticator), one per process:
- verified tokens, keyed by the token's SHA-256: an entry lives TOKEN_CACHE_TTL_S at most and never beyond the
  token's own expiry, so a token revoked by another process (or by a password change) stops working within
  TOKEN_CACHE_TTL_S; this process drops its own revocations at once (`drop`, `drop_where`).
- verified passwords (as Apache's mod_authn_socache does), keyed by an HMAC, under a random key of this process,
  of (username, password, stored bcrypt hash): the password itself is never kept, a new stored hash (a changed
  password) is a different key and so a miss at once, and an entry lives PASSWORD_CACHE_TTL_S at most.
"""
import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict

TOKEN_CACHE_TTL_S = 5
PASSWORD_CACHE_TTL_S = 60
MAX_ENTRIES = 10000  # beyond it the oldest entry goes: memory stays bounded whatever clients send


class TtlCache:
    """key -> value, each entry until its own deadline (a monotonic time); bounded, oldest out first; thread-safe."""

    def __init__(self, max_entries=MAX_ENTRIES):
        self.max_entries = max_entries
        self._entries = OrderedDict()  # key -> (deadline, value), in insertion order
        self._lock = threading.Lock()

    def put(self, key, value, deadline):
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = (deadline, value)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def get(self, key, now):
        """The value, or None when there is none or its deadline has come (then it is dropped)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if now >= entry[0]:
                del self._entries[key]
                return None
            return entry[1]

    def drop(self, key):
        with self._lock:
            self._entries.pop(key, None)

    def drop_where(self, predicate):
        """Drop every entry whose value matches (e.g. all tokens of one user)."""
        with self._lock:
            for key in [key for key, (_, value) in self._entries.items() if predicate(value)]:
                del self._entries[key]

    def __len__(self):
        return len(self._entries)


def token_cache_deadline(now, token_expires_at, wall_now, ttl_s=TOKEN_CACHE_TTL_S):
    """Until when (monotonic) a verified token may be trusted from the cache: `ttl_s` at most, and never beyond
    the token's expiry (`token_expires_at`, wall-clock seconds, read at `wall_now`)."""
    return now + min(ttl_s, max(0.0, token_expires_at - wall_now))


class CredentialKeys:
    """Cache keys of (username, password, stored hash) under a random key of this process: a key reveals nothing
    of the password, and a key made by another process (or after a restart) never matches."""

    def __init__(self, secret=None):
        self._secret = secret or secrets.token_bytes(32)

    def key(self, username, password, stored_hash):
        parts = [part.encode('utf-8', 'surrogatepass') if isinstance(part, str) else part
                 for part in (username, password, stored_hash)]
        # each part with its length first: ('a:b', 'c') and ('a', 'b:c') are different messages
        message = b''.join(len(part).to_bytes(4, 'big') + part for part in parts)
        return hmac.new(self._secret, message, hashlib.sha256).digest()
