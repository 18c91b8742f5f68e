"""Errors are JSON objects with a message and the right status: bad input is a 4xx (never a 500, never HTML), a
database that went away is a 503, and a registration cut short by it leaves nothing visible behind."""
import contextlib
import json

import pytest
import requests

from cc_agency import registration
from tests import reds
from tests.integration.api_support import Api, broker, start_broker  # noqa: F401 (fixture)
from localcluster import MongoServer


def assert_json_error(response, status):
    assert response.status_code == status, response.text
    assert response.headers['Content-Type'] == 'application/json'
    body = response.json()
    assert isinstance(body.get('message'), str) and body['message']
    assert 'Traceback' not in response.text and '<html' not in response.text.lower()
    return body['message']


def test_unknown_route_is_a_json_404(broker):
    assert_json_error(requests.get(broker.url + '/no/such/route', timeout=10), 404)


def test_wrong_method_is_a_json_405_with_allow(broker):
    response = requests.put(broker.url + '/batches', timeout=10)
    assert_json_error(response, 405)
    assert 'GET' in response.headers['Allow']


def post_red(api, session, body, content_type='application/json'):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return session.post(api.url + '/red', data=data, headers={'Content-Type': content_type}, timeout=30)


def test_body_that_is_no_json_is_400(broker):
    alice = broker.user_session('alice')
    assert 'JSON' in assert_json_error(post_red(broker, alice, 'not json'), 400)
    assert_json_error(post_red(broker, alice, b'\xff\xfe\x00'), 400)
    assert_json_error(post_red(broker, alice, '[' * 100000), 400)


def red_with(**changes):
    red = reds.red([reds.batch('http://127.0.0.1:9')])
    for dotted, value in changes.items():
        node = red
        *parents, leaf = dotted.split('__')
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[leaf] = value
    return red


@pytest.mark.parametrize('red, words', [
    ([1, 2], 'JSON object'),
    ({}, 'RED'),
    (red_with(redVersion='8'), 'RED'),
    (red_with(container__settings__ram=100), 'ram'),
    (red_with(container__engine='podman'), 'engine'),
    (red_with(batches=[]), 'batch'),
    (red_with(batches__0__inputs__word='{{word}}'), 'variables'),
    (red_with(batches__0__inputs__times='three'), 'times'),
    (red_with(batches__0__inputs__times=2 ** 70), '64-bit'),
    (red_with(batches__0__inputs__infile__connector__access__x={'$where': 1}), '$'),
    (red_with(batches__0__inputs__infile__connector__access___user=5), 'protected key'),
    (red_with(doc=float('nan')), 'NaN'),
    (red_with(doc='\udc80'), 'Unicode'),
    (red_with(doc=json.loads('[' * 200 + ']' * 200)), 'nested'),
])
def test_invalid_reds_are_400_and_write_nothing(broker, red, words):
    alice = broker.user_session('alice')
    body = json.dumps(red, allow_nan=True, ensure_ascii=True)
    message = assert_json_error(post_red(broker, alice, body), 400)
    assert words in message
    assert broker.get(alice, '/experiments/count').json() == {'count': 0}
    assert broker.db['batches'].count_documents({'username': alice.username}) == 0


def test_too_large_body_is_413(broker):
    alice = broker.user_session('alice')
    response = alice.post(broker.url + '/red', data=b' ' * (65 * 1024 * 1024),
                          headers={'Content-Type': 'application/json'}, timeout=60)
    assert_json_error(response, 413)


def test_batch_larger_than_a_document_can_be_is_refused_whole(broker):
    alice = broker.user_session('alice')
    # 17 texts of 1 MiB (a single text may be at most 1 MiB, cc_agency.red.MAX_TEXT_CHARS)
    big_access = {'k{}'.format(i): 'x' * (1024 * 1024) for i in range(17)}
    red = reds.red([reds.batch('http://127.0.0.1:9'), reds.batch('http://127.0.0.1:9', access_extra=big_access)])
    assert 'cannot be stored' in assert_json_error(post_red(broker, alice, red), 413)
    assert broker.get(alice, '/experiments/count').json() == {'count': 0}
    assert broker.db['experiments'].count_documents({'username': alice.username}) == 0
    assert broker.db['batches'].count_documents({'username': alice.username}) == 0


# ------------------------------------------------------------------------------------------ database unreachable

@pytest.fixture
def own_mongo():
    """A MongoDB-wire server of this test alone: the test stops it, or makes its writes fail (fail points)."""
    server = MongoServer(extra_args=['--enable-test-commands'])
    try:
        server.start()
        yield server
    finally:
        server.stop()
        server.remove()


@pytest.fixture
def fragile(own_mongo):
    server, db_name = start_broker(own_mongo, 'fragile')
    client = own_mongo.client()
    try:
        yield Api(server, client[db_name])
    finally:
        server.stop()
        client.close()


def test_database_down_is_503_then_recovers(fragile, own_mongo):
    alice = fragile.user_session('alice')
    experiment_id = fragile.submit(alice)
    own_mongo.stop()

    answers = [alice.get(fragile.url + '/batches', timeout=30),
               alice.delete(fragile.url + '/batches/' + '0' * 24, timeout=30),
               requests.get(fragile.url + '/version', auth=(alice.username, 'whatever'), timeout=30),
               post_red(fragile, alice, reds.red([reds.batch('http://127.0.0.1:9')]))]
    for response in answers:
        assert 'database' in assert_json_error(response, 503)
        assert response.headers['Retry-After']
        assert response.elapsed.total_seconds() < 15
    assert requests.get(fragile.url + '/', timeout=10).status_code == 200  # liveness needs no database

    own_mongo.start()
    assert fragile.get(alice, '/experiments').json()[0]['_id'] == experiment_id
    assert fragile.get(alice, '/experiments/count').json() == {'count': 1}  # the refused POST wrote nothing


@contextlib.contextmanager
def writes_failing(client, skip, commands=('insert', 'delete')):
    """The database drops the connection of every `commands` command after the first `skip` (a failCommand fail
    point, as the MongoDB driver tests use): writes fail from an exact point on, reads still work."""
    client.admin.command('configureFailPoint', 'failCommand', mode={'skip': skip, 'times': 10 ** 6},
                         data={'failCommands': list(commands), 'closeConnection': True})
    try:
        yield
    finally:
        client.admin.command('configureFailPoint', 'failCommand', mode='off')


def test_registration_cut_short_by_the_database_shows_nothing(fragile):
    """The database fails after two of the four chunks of an experiment's batches were staged, and the broker
    cannot remove them: the client gets a 503, nothing of the experiment is visible, and the controller's janitor
    removes the staged chunks."""
    alice = fragile.user_session('alice')
    with writes_failing(fragile.db.client, skip=2):
        response = post_red(fragile, alice, reds.red_of(4000))
    assert 'database' in assert_json_error(response, 503)

    assert fragile.db['pending_batches'].count_documents({}) == 2  # the half-written registration is really there
    assert fragile.get(alice, '/experiments').json() == []
    assert fragile.get(alice, '/experiments/count').json() == {'count': 0}
    assert fragile.get(alice, '/batches').json() == []
    assert fragile.get(alice, '/batches/count').json() == {'count': 0}
    assert registration.remove_orphans(fragile.db, older_than_s=0) == 2
    assert fragile.db['pending_batches'].count_documents({}) == 0


def test_a_registration_the_broker_cannot_finish_is_finished_by_the_controller(fragile):
    """The experiment is written, then inserting its batches fails: the answer is still its id (the registration
    is committed), and what the controller's registrar runs registers every batch."""
    alice = fragile.user_session('alice')
    with writes_failing(fragile.db.client, skip=2, commands=('insert',)):  # the chunk and the experiment go in
        response = post_red(fragile, alice, reds.red_of(5))
    assert response.status_code == 200, response.text
    assert response.json()['registrationComplete'] is False
    experiment_id = response.json()['experimentId']
    assert fragile.get(alice, '/experiments/' + experiment_id).json()['registrationComplete'] is False
    # registered all the same: staged, and read from their chunk
    assert fragile.get(alice, '/batches/count', experimentId=experiment_id).json() == {'count': 5}
    assert len(fragile.get(alice, '/batches', experimentId=experiment_id).json()) == 5

    assert registration.register_pending(fragile.db) == 1
    assert fragile.get(alice, '/experiments/' + experiment_id).json()['registrationComplete'] is True
    assert fragile.get(alice, '/batches/count', experimentId=experiment_id).json() == {'count': 5}
