"""The pure part of notifications (cc_agency/notifications.py): grouping, ids, body, signature, retry schedule."""
import hashlib
import hmac
import json

from hypothesis import given, settings, strategies as st

from cc_agency import notifications as n
from cc_agency.transitions import transition_update


def notice(i, time=1000.0):
    return {'batchId': 'b{:04d}'.format(i), 'experimentId': 'e1', 'username': 'alice', 'state': 'succeeded',
            'node': 'node1', 'attempts': 1, 'time': time}


def test_a_terminal_transition_marks_the_batch_in_the_same_update_and_other_transitions_do_not():
    batch = {'_id': 'b1', 'inputs': {}, 'outputs': {}}
    for state in ('succeeded', 'failed', 'cancelled'):
        assert transition_update(batch, state)['$set'][n.NOTIFY_MARKER] is True
    for state in ('scheduled', 'processing', 'registered'):
        assert n.NOTIFY_MARKER not in transition_update(batch, state)['$set']


def test_a_batch_document_becomes_its_notice():
    batch = {'_id': 'b1', 'experimentId': 'e1', 'username': 'alice', 'state': 'cancelled', 'node': None,
             'attempts': 0, 'history': [{'state': 'cancelled', 'time': 12.5}], 'inputs': {'secret': 'x'}}
    assert n.batch_notice(batch) == {'batchId': 'b1', 'experimentId': 'e1', 'username': 'alice',
                                     'state': 'cancelled', 'node': None, 'attempts': 0, 'time': 12.5}


@given(st.lists(st.integers(0, 999), unique=True, max_size=350), st.integers(1, 150))
def test_groups_hold_every_batch_once_within_the_cap_and_do_not_depend_on_the_read_order(ids, size):
    notices = [notice(i, time=float(i % 7)) for i in ids]
    made = n.groups(notices, size)
    assert sorted(x['batchId'] for group in made for x in group) == sorted(x['batchId'] for x in notices)
    assert all(0 < len(group) <= size for group in made)
    assert n.groups(list(reversed(notices)), size) == made


def test_groups_cap_a_request_at_100_batches():
    assert [len(group) for group in n.groups([notice(i) for i in range(250)])] == [100, 100, 50]


def test_a_delivery_id_depends_on_the_hook_and_the_batches_not_their_order():
    group = [notice(1), notice(2)]
    assert n.delivery_id('hookA', group) == n.delivery_id('hookA', list(reversed(group)))
    assert n.delivery_id('hookA', group) != n.delivery_id('hookB', group)
    assert n.delivery_id('hookA', group) != n.delivery_id('hookA', [notice(1)])


def test_the_body_is_the_same_bytes_for_the_same_batches_and_signed_with_hmac_sha256():
    group = [notice(1), notice(2)]
    body = n.body_bytes(group)
    assert body == n.body_bytes(json.loads(body.decode())['batches'])  # stored and read back: the same bytes
    assert json.loads(body) == {'batches': group}
    headers = n.request_headers('d1', body, 'the-secret')
    assert headers[n.DELIVERY_HEADER] == 'd1'
    assert headers[n.SIGNATURE_HEADER] == 'sha256=' + hmac.new(b'the-secret', body, hashlib.sha256).hexdigest()
    assert n.SIGNATURE_HEADER not in n.request_headers('d1', body, None)


def test_hooks_are_named_without_their_credentials():
    url = 'https://user:pw@hooks.example.com:8443/cc?token=t0ps3cret'
    assert n.hook_label(url) == 'https://hooks.example.com:8443'
    assert 'pw' not in n.hook_key(url) and len(n.hook_key(url)) == 16 and n.hook_key(url) != n.hook_key(url + 'x')


@given(st.integers(1, 200), st.floats(0.01, 600))
def test_the_retry_delay_grows_with_each_try_up_to_the_cap(attempts, base_s):
    assert n.retry_delay_s(attempts, base_s) <= n.retry_delay_s(attempts + 1, base_s) <= n.MAX_RETRY_DELAY_S
    assert n.retry_delay_s(1, base_s) == base_s


@settings(max_examples=200)
@given(st.floats(0.01, 3600), st.floats(0, 30))
def test_a_failing_delivery_is_tried_for_at_least_an_hour_then_given_up(base_s, post_s):
    """Each try fails after `post_s` (a timeout); the delivery is given up only an hour or more after its first
    try, and then surely (a bounded number of tries)."""
    first = clock = 1000.0
    attempts, state = 0, n.PENDING
    while state == n.PENDING:
        attempts += 1
        clock += post_s
        state, next_at = n.after_failure(attempts, first, clock, base_s)
        if state == n.PENDING:
            assert next_at > clock
            clock = next_at
        assert attempts < 10000
    assert state == n.GIVEN_UP and clock - first >= n.GIVE_UP_AFTER_S
    assert clock - first < n.GIVE_UP_AFTER_S + n.MAX_RETRY_DELAY_S + post_s + 1


def test_the_default_schedule_of_10_s():
    assert [n.retry_delay_s(a, 10) for a in range(1, 10)] == [10, 20, 40, 80, 160, 320, 640, 900, 900]



def test_a_batch_with_a_broken_history_still_gets_its_notice():
    for history in (None, [], ['x'], [{'time': 'yesterday'}], [{'time': True}]):
        assert n.batch_notice({'_id': 'b1', 'state': 'failed', 'history': history})['time'] is None
    assert n.groups([n.batch_notice({'_id': 'b2', 'history': ['x']}), notice(1)])  # sortable with the others
