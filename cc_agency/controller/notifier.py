"""The notifier: tells the operator's notification hooks which batches ended, at least once.

Why its own threads: a receiver that is down or hangs must never delay scheduling, nor the other hooks. One
outbox thread (woken when batches end, and every OUTBOX_INTERVAL_S, as the broker's cancels happen in another
process) turns the batches marked by their terminal transition into delivery documents in `notifications` and
removes the markers; one sender thread per hook posts that hook's due deliveries, each with a timeout of
POST_TIMEOUT_S. The semantics (deterministic delivery ids, the same body on every try, duplicates possible under
two ids after a crash, never a lost batch) are in cc_agency/notifications.py.

Hooks are read at start: a hook removed from the configuration gets its pending deliveries given up at the next
start ("hook no longer configured"); a reload (SIGHUP) does not change the hooks. The auth password and the HMAC
secret live in this process only: the database names a hook by a hash of its URL, the log by scheme, host and port.
"""
import datetime
import logging
import threading
import time

import pymongo.errors
import requests

from cc_agency import loggable
from cc_agency.db import BATCHES, NOTIFICATIONS
from cc_agency.notifications import (BATCH_FIELDS, DELIVERED, GIVEN_UP, NOTIFY_MARKER, PENDING, POST_TIMEOUT_S,
                                     after_failure, batch_notice, body_bytes, delivery_id, groups, hook_key,
                                     hook_label, request_headers)

log = logging.getLogger(__name__)

OUTBOX_INTERVAL_S = 2.0  # how often marked batches are looked for without a wake-up
OUTBOX_READ_LIMIT = 1000  # marked batches read in one round trip
SENDER_MAX_WAIT_S = 5.0  # the longest a sender sleeps before it looks for due deliveries again
DUE_READ_LIMIT = 100  # due deliveries read in one round trip


class Hook:
    """One entry of `controller.notification_hooks`; its repr never shows the URL's user info or the credentials."""

    def __init__(self, index, conf):
        self.index = index
        self.url = conf['url']
        auth = conf.get('auth')
        self.auth = (auth['username'], auth['password']) if auth else None
        self.secret = conf.get('secret')
        self.key = hook_key(self.url)
        self.label = 'hook {} ({})'.format(index, hook_label(self.url))
        self.wake = threading.Event()

    def __repr__(self):
        return self.label


def _utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


class Notifier:
    """:param hooks_conf: `controller.notification_hooks` (a list; empty: markers are only removed)
    :param retry_base_s: the first wait after a failed POST (`controller.notification_retry_base_seconds`)
    :param stopping: the controller's stop event
    :param on_given_up: called once per delivery given up (the metrics' counter)
    """

    def __init__(self, db, hooks_conf, retry_base_s, stopping, on_given_up=None, post_timeout_s=POST_TIMEOUT_S):
        self.db = db
        self.hooks = [Hook(index, conf) for index, conf in enumerate(hooks_conf or ())]
        self.retry_base_s = retry_base_s
        self.stopping = stopping
        self.on_given_up = on_given_up or (lambda: None)
        self.post_timeout_s = post_timeout_s
        self._outbox_wake = threading.Event()
        self._orphans_given_up = False

    def wake(self):
        """Batches may have ended: look for markers now (only sets an event, so it never blocks the caller)."""
        self._outbox_wake.set()

    def start(self):
        threading.Thread(target=self._outbox_loop, name='notifier-outbox', daemon=True).start()
        for hook in self.hooks:
            threading.Thread(target=self._sender_loop, args=(hook,), name='notifier-hook-{}'.format(hook.index),
                             daemon=True).start()
        if self.hooks:
            log.info('notifications of ended batches go to %d hook(s): %s', len(self.hooks),
                     ', '.join(hook.label for hook in self.hooks))

    # --- the outbox: marked batches -> deliveries ------------------------------------------------------------------
    def _outbox_loop(self):
        while not self.stopping.is_set():
            self._outbox_wake.wait(OUTBOX_INTERVAL_S)
            self._outbox_wake.clear()
            try:
                if not self._orphans_given_up:
                    self.give_up_unconfigured()
                    self._orphans_given_up = True
                while self.collect() == OUTBOX_READ_LIMIT and not self.stopping.is_set():
                    pass  # more are marked: go on at once
            except Exception as e:  # one bad round (database away, a bad document) is logged; the next goes on
                log.warning('notifications: collecting ended batches failed, retrying (%s)', loggable.describe(e))
                self.stopping.wait(1)

    def give_up_unconfigured(self):
        """Pending deliveries of hooks no longer in the configuration will never be posted: give them up."""
        result = self.db[NOTIFICATIONS].update_many(
            {'state': PENDING, 'hook': {'$nin': [hook.key for hook in self.hooks]}},
            {'$set': {'state': GIVEN_UP, 'lastError': 'hook no longer configured', 'doneAt': _utc_now()}})
        if result.modified_count:
            log.error('notifications: %d pending deliveries given up: their hook is no longer configured',
                      result.modified_count)
            for _ in range(result.modified_count):
                self.on_given_up()

    def collect(self):
        """One round: turn up to OUTBOX_READ_LIMIT marked batches into deliveries, then unmark them. Returns how many
        batches it handled."""
        marked = list(self.db[BATCHES].find({NOTIFY_MARKER: True}, BATCH_FIELDS).limit(OUTBOX_READ_LIMIT))
        if not marked:
            return 0
        if self.hooks:
            notices = []
            for batch in marked:
                try:
                    notices.append(batch_notice(batch))
                except Exception as e:  # one bad document must not hold back the others' notifications
                    log.error('notifications: batch %s cannot be told (%s); it is left out', batch.get('_id'),
                              type(e).__name__)
            created_at = time.time()
            for group in groups(notices):
                for hook in self.hooks:
                    self._insert_delivery(hook, group, created_at)
        self.db[BATCHES].update_many({'_id': {'$in': [batch['_id'] for batch in marked]}},
                                     {'$unset': {NOTIFY_MARKER: ''}})
        for hook in self.hooks:
            hook.wake.set()
        return len(marked)

    def _insert_delivery(self, hook, group, created_at):
        """Insert the delivery unless it exists (the same batches, read again after a crash): the id decides."""
        document = {'hook': hook.key, 'batches': group, 'state': PENDING, 'attempts': 0, 'createdAt': created_at,
                    'nextAttemptAt': created_at, 'firstAttemptAt': None, 'lastError': None}
        try:
            self.db[NOTIFICATIONS].update_one({'_id': delivery_id(hook.key, group)}, {'$setOnInsert': document},
                                              upsert=True)
        except pymongo.errors.DuplicateKeyError:
            pass  # inserted meanwhile: it exists, which is all this step asks

    # --- one sender per hook ---------------------------------------------------------------------------------------
    def _sender_loop(self, hook):
        session = requests.Session()
        while not self.stopping.is_set():
            wait_s = SENDER_MAX_WAIT_S
            try:
                next_due = self.send_due(hook, session)
                if next_due is not None:
                    wait_s = min(SENDER_MAX_WAIT_S, max(0.0, next_due - time.time()))
            except Exception as e:  # the database away, a bad document: logged, the next round goes on
                log.warning('notifications: %s: sending failed, retrying (%s)', hook.label, loggable.describe(e))
                wait_s = 1.0
            if wait_s > 0:
                hook.wake.wait(wait_s)
            hook.wake.clear()

    def send_due(self, hook, session):
        """Post the hook's due deliveries, oldest first, until one fails. Returns when the next one is due (None:
        none is pending)."""
        due = self.db[NOTIFICATIONS].find({'state': PENDING, 'hook': hook.key, 'nextAttemptAt': {'$lte': time.time()}})
        for delivery in list(due.sort('nextAttemptAt', 1).limit(DUE_READ_LIMIT)):
            if self.stopping.is_set():
                break
            try:
                body = body_bytes(delivery['batches'])
            except Exception as e:  # a document broken in the database: given up, so that it holds back no other
                self._give_up_broken(hook, delivery, e)
                continue
            if not self.post(hook, delivery, body, session):
                break  # the receiver fails: the others wait for their own time
        following = self.db[NOTIFICATIONS].find_one({'state': PENDING, 'hook': hook.key}, {'nextAttemptAt': 1},
                                                    sort=[('nextAttemptAt', 1)])
        return following['nextAttemptAt'] if following else None

    def _give_up_broken(self, hook, delivery, error):
        self.db[NOTIFICATIONS].update_one({'_id': delivery['_id'], 'state': PENDING}, {'$set': {
            'state': GIVEN_UP, 'lastError': 'broken document ({})'.format(type(error).__name__), 'doneAt': _utc_now()}})
        log.error('notifications: delivery %s to %s given up: its document is broken (%s)', delivery['_id'],
                  hook.label, type(error).__name__)
        self.on_given_up()

    def post(self, hook, delivery, body, session):
        """One try of one delivery (`body`: its request body); records its outcome. Returns True when the hook took
        it."""
        attempt = delivery.get('attempts', 0) + 1
        first_attempt_at = delivery.get('firstAttemptAt') or time.time()
        try:
            response = session.post(hook.url, data=body, headers=request_headers(delivery['_id'], body, hook.secret),
                                    auth=hook.auth, timeout=self.post_timeout_s, allow_redirects=False)
            error = None if 200 <= response.status_code < 300 else 'HTTP {}'.format(response.status_code)
            response.close()
        except requests.RequestException as e:  # its type only: the message may quote the URL
            error = type(e).__name__
        done = {'_id': delivery['_id'], 'state': PENDING}
        if error is None:
            self.db[NOTIFICATIONS].update_one(done, {'$set': {
                'state': DELIVERED, 'attempts': attempt, 'firstAttemptAt': first_attempt_at, 'lastError': None,
                'deliveredAt': time.time(), 'doneAt': _utc_now()}})
            log.info('notifications: delivery %s (%d batches) taken by %s at try %d', delivery['_id'],
                     len(delivery['batches']), hook.label, attempt)
            return True
        state, next_attempt_at = after_failure(attempt, first_attempt_at, time.time(), self.retry_base_s)
        update = {'state': state, 'attempts': attempt, 'firstAttemptAt': first_attempt_at, 'lastError': error,
                  'nextAttemptAt': next_attempt_at}
        if state == GIVEN_UP:
            update['doneAt'] = _utc_now()
        self.db[NOTIFICATIONS].update_one(done, {'$set': update})
        if state == GIVEN_UP:
            log.error('notifications: delivery %s (%d batches) to %s given up after %d tries in %.0f s (last: %s)',
                      delivery['_id'], len(delivery['batches']), hook.label, attempt, time.time() - first_attempt_at,
                      error)
            self.on_given_up()
        else:
            log.warning('notifications: delivery %s (%d batches) to %s failed at try %d (%s); next try in %.1f s',
                        delivery['_id'], len(delivery['batches']), hook.label, attempt, error,
                        next_attempt_at - time.time())
        return False
