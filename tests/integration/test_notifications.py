"""Notifications of ended batches over real HTTP: every ended batch reaches the hook (also one the user cancelled
through the broker), signed and with Basic auth, each delivery taken once under its id after failed tries with the
same id and body, and a delivery pending when the controller dies is delivered by the next one."""
import hashlib
import hmac
import json
import threading
import time

import requests

from cc_agency.controller.notifier import Notifier
from cc_agency.db import ensure_indexes
from cc_agency.notifications import DELIVERED, NOTIFY_MARKER
from tests.integration.cluster import command_red, nodes_of, submit, user_session, wait_nodes_online
from tests.integration.hook_receiver import HookReceiver

SECRET = 'hook-hmac-secret'
HOOK_USER, HOOK_PASSWORD = 'hook', 'hook-password'


def hook_conf(receiver, retry_base_s=0.2):
    return {'controller.notification_hooks': [{'url': receiver.url, 'secret': SECRET,
                                               'auth': {'username': HOOK_USER, 'password': HOOK_PASSWORD}}],
            'controller.notification_retry_base_seconds': retry_base_s}


def wait_for(condition, timeout_s, what):
    deadline = time.time() + timeout_s
    while not condition():
        assert time.time() < deadline, what
        time.sleep(0.1)


def wait_state(agency, session, batch_id, state, timeout_s=30):
    wait_for(lambda: session.get(agency.url + '/batches/' + batch_id, timeout=10).json()['state'] == state,
             timeout_s, 'batch {} not {}'.format(batch_id, state))


def test_every_ended_batch_is_delivered_once_per_delivery_id_signed_after_failed_tries(make_agency, engine):
    with HookReceiver(HOOK_USER, HOOK_PASSWORD, statuses=[500, 500]) as receiver:
        agency = make_agency(nodes_of([engine]), attempts_to_fail=1, extra=hook_conf(receiver))
        alice = user_session(agency, 'alice')
        wait_nodes_online(agency, alice, [engine.name])
        experiment_id = submit(agency, alice, command_red(['pass', 'raise SystemExit(3)',
                                                           'import time; time.sleep(60)']))
        batches = alice.get(agency.url + '/batches', params={'experimentId': experiment_id}, timeout=10).json()
        by_seq = sorted(batches, key=lambda b: b['seq'])
        sleeper = by_seq[2]['_id']
        wait_state(agency, alice, sleeper, 'processing')
        assert alice.delete(agency.url + '/batches/' + sleeper, timeout=10).status_code == 200
        expected = {b['_id'] for b in batches}
        wait_for(lambda: set(receiver.delivered_batches()) == expected, 60,
                 'not every batch delivered: {}\n{}'.format(receiver.snapshot(), agency.log('controller')[-3000:]))
        time.sleep(1)  # a duplicate would come now

        received = receiver.snapshot()
        assert [r.status for r in received[:2]] == [500, 500]
        for request in received:
            assert request.user == '{}:{}'.format(HOOK_USER, HOOK_PASSWORD)
            assert request.signature == 'sha256=' + hmac.new(SECRET.encode(), request.body,
                                                              hashlib.sha256).hexdigest()
        by_id = {}
        for request in received:
            by_id.setdefault(request.delivery, []).append(request)
        for delivery, tries in by_id.items():
            assert [t.status for t in tries].count(200) == 1, tries  # taken once, no try after it
            assert tries[-1].status == 200
            assert len({t.body for t in tries}) == 1  # a retry is the same request
        assert any(len(tries) > 1 for tries in by_id.values())  # the failed ones were retried under their id

        delivered = receiver.delivered_batches()
        assert all(len(entries) == 1 for entries in delivered.values()), delivered
        states = {b['_id']: alice.get(agency.url + '/batches/' + b['_id'], timeout=10).json() for b in batches}
        for batch_id, [entry] in delivered.items():
            assert entry['state'] == states[batch_id]['state']
            assert (entry['experimentId'], entry['username'], entry['attempts']) == (experiment_id, 'alice', 1)
            assert entry['node'] == engine.name and isinstance(entry['time'], float)
        assert sorted(entry['state'] for [entry] in delivered.values()) == ['cancelled', 'failed', 'succeeded']

        with agency.database() as db:
            assert db.batches.count_documents({NOTIFY_MARKER: {'$exists': True}}) == 0
            documents = list(db.notifications.find())
            assert {d['_id'] for d in documents} == set(by_id)
            assert all(d['state'] == DELIVERED for d in documents)
            stored = json.dumps(documents, default=str)
            assert SECRET not in stored and HOOK_PASSWORD not in stored and receiver.url not in stored
        log = agency.log('controller')
        assert SECRET not in log and HOOK_PASSWORD not in log


def test_a_delivery_pending_when_the_controller_dies_is_delivered_after_its_restart(make_agency, engine):
    with HookReceiver(HOOK_USER, HOOK_PASSWORD, default_status=503) as receiver:
        agency = make_agency(nodes_of([engine]), extra=hook_conf(receiver, retry_base_s=0.5))
        alice = user_session(agency, 'alice')
        wait_nodes_online(agency, alice, [engine.name])
        experiment_id = submit(agency, alice, command_red(['pass']))
        wait_for(lambda: receiver.snapshot(), 60, 'nothing posted')
        with agency.database() as db:  # the failed try is recorded (the answer reached the receiver before that)
            wait_for(lambda: db.notifications.find_one({'attempts': {'$gte': 1}}), 30, 'the failed try not recorded')
        agency.stop_controller(kill=True)
        [failed, *_] = receiver.snapshot()
        assert failed.status == 503
        with agency.database() as db:
            [pending] = list(db.notifications.find())
            assert pending['state'] == 'pending' and pending['attempts'] >= 1
        receiver.default_status = 200
        posted_while_down = len(receiver.snapshot())
        time.sleep(1)
        assert len(receiver.snapshot()) == posted_while_down  # nobody else posts it

        agency.start_controller()
        wait_for(lambda: receiver.delivered_batches(), 60, 'not delivered after the restart:\n{}'.format(
            agency.log('controller')[-3000:]))
        taken = [r for r in receiver.snapshot() if r.status == 200]
        assert [r.delivery for r in taken] == [failed.delivery] and taken[0].body == failed.body
        [entry] = json.loads(taken[0].body)['batches']
        assert (entry['experimentId'], entry['state']) == (experiment_id, 'succeeded')
        with agency.database() as db:
            assert db.notifications.find_one({'_id': failed.delivery})['state'] == DELIVERED


def test_a_crash_between_writing_deliveries_and_unmarking_loses_no_batch_and_sends_no_second_id(mongo_db):
    """The notifier's steps on the real database, driven one by one: the markers left by a crash after the
    deliveries were written give the same delivery again (not a second one); a batch with a broken history is told
    without its time and holds back no other; the delivery is then taken by the receiver once."""
    ensure_indexes(mongo_db)
    ended = [{'_id': 'b{}'.format(i), 'experimentId': 'e1', 'username': 'alice', 'state': 'succeeded',
              'node': 'node1', 'attempts': 1, 'history': [{'state': 'succeeded', 'time': 100.0 + i}],
              NOTIFY_MARKER: True} for i in range(3)]
    broken = {'_id': 'b-broken', 'state': 'failed', 'history': 'not a list', NOTIFY_MARKER: True}
    mongo_db.batches.insert_many(ended + [broken, {'_id': 'b-running', 'state': 'processing'}])
    with HookReceiver(HOOK_USER, HOOK_PASSWORD) as receiver:
        [hook] = hook_conf(receiver)['controller.notification_hooks']
        notifier = Notifier(mongo_db, [hook], 0.2, threading.Event())
        assert notifier.collect() == 4
        [delivery] = list(mongo_db.notifications.find())
        mongo_db.batches.update_many({}, {'$set': {NOTIFY_MARKER: True}})  # as if the unmarking never happened
        mongo_db.batches.update_one({'_id': 'b-running'}, {'$unset': {NOTIFY_MARKER: ''}})
        assert notifier.collect() == 4
        assert [d['_id'] for d in mongo_db.notifications.find()] == [delivery['_id']]
        assert mongo_db.batches.count_documents({NOTIFY_MARKER: {'$exists': True}}) == 0
        assert [b['batchId'] for b in delivery['batches']] == ['b-broken', 'b0', 'b1', 'b2']  # no time: first

        assert notifier.send_due(notifier.hooks[0], requests.Session()) is None  # nothing pending after it
        [request] = receiver.snapshot()
        assert (request.delivery, request.status) == (delivery['_id'], 200)
        assert mongo_db.notifications.find_one()['state'] == DELIVERED
