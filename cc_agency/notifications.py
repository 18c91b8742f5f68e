"""Notifications of ended batches (`controller.notification_hooks`): the contract and its pure logic.

Why a module of its own: the batch life cycle (cc_agency/transitions.py, broker and controller alike) marks a batch
in the very compare-and-set that ends it (NOTIFY_MARKER), the controller's notifier
(cc_agency/controller/notifier.py) turns marked batches into delivery documents and posts them, and the metrics
(cc_agency/controller/metrics.py) count the pending ones: all three meet in the names defined here once.

Delivery is at least once (a transactional outbox, as the database has no multi-document transactions):
1. the terminal transition sets NOTIFY_MARKER on the batch in the same write that ends it, so no ended batch is
   ever without its marker, whichever process ended it;
2. the notifier reads marked batches, writes one delivery per hook and group of at most MAX_BATCHES_PER_DELIVERY
   batches with a deterministic id (`delivery_id`, an upsert that only inserts), then removes the markers. A crash
   between the two writes leaves the markers: the batches are read again and, grouped the same way, find their
   deliveries already there; grouped differently (more batches ended meanwhile) they go out again under another
   id. So a receiver may see a batch twice under two delivery ids, never lose one;
3. a delivery is `pending` until a POST to its hook answers 2xx (`delivered`); a failed POST is retried after
   `retry_delay_s` (exponential, capped) with the same id and the same body bytes, until GIVE_UP_AFTER_S after its
   first attempt (`given_up`).
Nothing secret is in a delivery: the hook is named by a hash of its URL, the auth password and HMAC secret stay in
the configuration.
"""
import hashlib
import hmac
import json
import urllib.parse

NOTIFY_MARKER = 'notify'  # field of a batch: True from the write that ended it until its deliveries exist

# the `notifications` collection (cc_agency.db.NOTIFICATIONS): one document per delivery, in one of these states
PENDING = 'pending'
DELIVERED = 'delivered'
GIVEN_UP = 'given_up'
DELIVERY_STATES = (PENDING, DELIVERED, GIVEN_UP)

MAX_BATCHES_PER_DELIVERY = 100  # batches in one request body
POST_TIMEOUT_S = 10  # one POST to a hook; a dead receiver costs its own sender thread this much per try
MAX_RETRY_DELAY_S = 900  # the longest wait between two tries (15 min)
GIVE_UP_AFTER_S = 3600  # a delivery still failing this long after its first try is given up
DONE_KEPT_S = 7 * 24 * 3600  # delivered and given-up deliveries are removed this long after (TTL index)

DELIVERY_HEADER = 'X-CC-Agency-Delivery'
SIGNATURE_HEADER = 'X-CC-Agency-Signature'

# what a batch document is read with to make its entry of a request body
BATCH_FIELDS = {'experimentId': 1, 'username': 1, 'state': 1, 'node': 1, 'attempts': 1, 'history': {'$slice': -1}}


def hook_key(url):
    """How a hook is named in the database: a hash of its URL (which may hold a token), never the URL itself."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def hook_label(url):
    """How a hook is named in the log: scheme, host and port only (no user info, path or query)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or '?'
    if ':' in host:
        host = '[{}]'.format(host)
    return '{}://{}{}'.format(parts.scheme, host, ':{}'.format(parts.port) if parts.port else '')


def batch_notice(batch):
    """A batch's entry of a request body, from a document read with BATCH_FIELDS (pure)."""
    history = batch.get('history') or [{}]
    last = history[-1] if isinstance(history, list) and isinstance(history[-1], dict) else {}
    ended_at = last.get('time')
    return {'batchId': str(batch['_id']), 'experimentId': batch.get('experimentId'),
            'username': batch.get('username'), 'state': batch.get('state'), 'node': batch.get('node'),
            'attempts': batch.get('attempts'),
            'time': float(ended_at) if isinstance(ended_at, (int, float)) and not isinstance(ended_at, bool) else None}


def groups(notices, size=MAX_BATCHES_PER_DELIVERY):
    """The notices in request-sized groups, each ordered by (time, batchId), so that the same batches always make
    the same groups (pure)."""
    ordered = sorted(notices, key=lambda notice: (notice['time'] or 0, notice['batchId']))
    return [ordered[start:start + size] for start in range(0, len(ordered), size)]


def delivery_id(key, notices):
    """The deterministic id of the delivery of these batches to the hook `key` (pure)."""
    digest = hashlib.sha256(key.encode())
    for batch_id in sorted(notice['batchId'] for notice in notices):
        digest.update(b'\n' + batch_id.encode())
    return digest.hexdigest()[:32]


def body_bytes(notices):
    """The request body: the same bytes on every try of a delivery (keys sorted, no spaces) (pure)."""
    return json.dumps({'batches': notices}, sort_keys=True, separators=(',', ':')).encode()


def signature(secret, body):
    """`sha256=<hex HMAC-SHA256 of the body>` under the hook's secret (pure)."""
    return 'sha256=' + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def request_headers(delivery, body, secret=None):
    """The headers of a POST of `body` as delivery `delivery` (its id), signed when the hook has a secret (pure)."""
    headers = {'Content-Type': 'application/json', DELIVERY_HEADER: delivery}
    if secret:
        headers[SIGNATURE_HEADER] = signature(secret, body)
    return headers


def retry_delay_s(attempts, base_s):
    """How long to wait after the `attempts`-th failed try: base_s doubled per try, at most MAX_RETRY_DELAY_S
    (pure)."""
    exponent = min(max(attempts, 1) - 1, 64)  # 2**64 times any base is past the cap already
    return min(base_s * 2 ** exponent, MAX_RETRY_DELAY_S)


def after_failure(attempts, first_attempt_at, failed_at, base_s):
    """(state, next try's time) of a delivery whose `attempts`-th try failed at `failed_at` (pure)."""
    if failed_at - first_attempt_at >= GIVE_UP_AFTER_S:
        return GIVEN_UP, None
    return PENDING, failed_at + retry_delay_s(attempts, base_s)
