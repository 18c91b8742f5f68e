"""Password guessing and CPU burning: what happens before a password hash is computed.

A bcrypt check costs tens to hundreds of milliseconds of CPU by design, so nobody may make the broker compute
many of them:
- per username (the seed's `num_login_attempts` within `block_for_seconds`): a user with that many failures is
  refused (429), even with the right password, until the oldest of them leaves the window;
- per client address: ADDRESS_ATTEMPTS_FACTOR x `num_login_attempts` failures within `block_for_seconds`, whatever
  the usernames (random names would otherwise each cost a bcrypt check). IPv6 clients count per /64 network,
  the block one end user gets;
- an attempt is recorded as a failure *before* its hash is computed and the attempts recorded before it are
  counted after that write, so parallel guesses see each other and no more than the limit are checked (record ids
  order the attempts; those of different broker processes within one second in an order of their own); a right
  password removes its record again;
- at most MAX_CONCURRENT_PASSWORD_CHECKS bcrypt checks run at once per process; a check that waits longer than
  PASSWORD_CHECK_WAIT_S is not done (503).
Failures are kept in the `login_failures` collection, shared by all broker processes.
"""
import ipaddress
import threading

import pymongo

from cc_agency.db import LOGIN_FAILURES, now

ADDRESS_ATTEMPTS_FACTOR = 10
MAX_CONCURRENT_PASSWORD_CHECKS = 2  # the machines this runs on have few cores; more at once only queue in the CPU
PASSWORD_CHECK_WAIT_S = 10
IPV6_CLIENT_PREFIX = 64


class Blocked(Exception):
    """Too many failures for this username (`by` = 'username') or from this address (`by` = 'address')."""

    def __init__(self, by, blocked_for_s):
        super().__init__(by)
        self.by = by
        self.blocked_for_s = blocked_for_s


class Busy(Exception):
    """No password check slot became free in time."""


def address_key(address):
    """The client address as counted: IPv4 as it is, IPv6 by its /64 network (pure)."""
    try:
        ip = ipaddress.ip_address(address or '')
    except ValueError:
        return str(address or 'unknown')
    if ip.version == 6:
        if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d is an IPv4 client
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network('{}/{}'.format(ip, IPV6_CLIENT_PREFIX), strict=False))
    return str(ip)


def blocked_for_s(failure_times, limit, window_s, at):
    """Seconds a name or address with these failure times stays refused at time `at` (0: not refused) (pure).

    Refused while `limit` failures lie within the last `window_s`: until the `limit`-th newest of them leaves it.
    """
    recent = sorted((t for t in failure_times if t > at - window_s), reverse=True)
    if len(recent) < limit:
        return 0
    return max(1, int(recent[limit - 1] + window_s - at) + 1)


def address_limit(auth_conf):
    return ADDRESS_ATTEMPTS_FACTOR * auth_conf['num_login_attempts']


def _recent_times(db, field, value, limit, window_s, before_id=None):
    query = {field: value, 'time': {'$gt': now() - window_s}}
    if before_id is not None:
        query['_id'] = {'$lt': before_id}
    cursor = db[LOGIN_FAILURES].find(query, {'time': 1}).sort('time', pymongo.DESCENDING).limit(limit)
    return [record['time'] for record in cursor]


def check_not_blocked(db, username, address, auth_conf):
    """Raise Blocked when the username or the client address has too many recent failures (two indexed reads).
    Also before a cached password is trusted: otherwise a blocked client could go on guessing a cached one."""
    window_s = auth_conf['block_for_seconds']
    for field, value, limit in (('username', username, auth_conf['num_login_attempts']),
                                ('address', address_key(address), address_limit(auth_conf))):
        seconds = blocked_for_s(_recent_times(db, field, value, limit, window_s), limit, window_s, now())
        if seconds:
            raise Blocked(field, seconds)


def begin_attempt(db, username, address, auth_conf):
    """Record a failure for this attempt, then count: returns the record's id when the password may be checked;
    raises Blocked (and removes the record) when the username or the address has reached its limit."""
    window_s = auth_conf['block_for_seconds']
    address = address_key(address)
    attempt_id = db[LOGIN_FAILURES].insert_one({'username': username, 'address': address, 'time': now()}).inserted_id
    for field, value, limit in (('username', username, auth_conf['num_login_attempts']),
                                ('address', address, address_limit(auth_conf))):
        # only the attempts recorded before this one count: of parallel guesses the first `limit` are checked (and
        # stay on record, so the name is blocked afterwards), the others refused; counting every other attempt
        # would let guesses that arrive together refuse each other and leave no failure on record
        others = _recent_times(db, field, value, limit, window_s, before_id=attempt_id)
        seconds = blocked_for_s(others, limit, window_s, now())
        if seconds:
            cancel_attempt(db, attempt_id)
            raise Blocked(field, seconds)
    db[LOGIN_FAILURES].delete_many({'time': {'$lt': now() - window_s}})  # old failures go on the way (indexed)
    return attempt_id


def cancel_attempt(db, attempt_id):
    """The attempt was no failure (right password, or never checked): its record goes."""
    db[LOGIN_FAILURES].delete_one({'_id': attempt_id})


class PasswordCheckSlots:
    """At most `slots` password checks at once in this process: `with slots:` waits up to `wait_s`, else Busy."""

    def __init__(self, slots=MAX_CONCURRENT_PASSWORD_CHECKS, wait_s=PASSWORD_CHECK_WAIT_S):
        self._semaphore = threading.BoundedSemaphore(slots)
        self.wait_s = wait_s

    def __enter__(self):
        if not self._semaphore.acquire(timeout=self.wait_s):
            raise Busy()
        return self

    def __exit__(self, *exc):
        self._semaphore.release()
