"""List and count endpoints: every filter, pagination, order, and 400s that name the bad parameter."""
import flask
import pymongo
import pymongo.monitoring
import pytest
from bson import ObjectId

from cc_agency.batch_counts import recount
from cc_agency.broker.listing import find_page
from cc_agency.broker.routes.batches import LIST_WITHOUT
from cc_agency.db import last_seq
from tests.integration.api_support import broker  # noqa: F401 (fixture)


@pytest.fixture(scope='module')
def data(broker):
    """Two users with three experiments in registration order; some batches moved on as the controller would."""
    alice, bob = broker.user_session('alice'), broker.user_session('bob')
    admin = broker.user_session('admin', admin=True)
    experiments = [broker.submit(alice, batches=3), broker.submit(bob, batches=2), broker.submit(alice, batches=4)]
    e1, e2, e3 = experiments
    batches = {e: [b['_id'] for b in broker.get(admin, '/batches', experimentId=e, ascending='true').json()]
               for e in experiments}
    moves = [(batches[e1][0], 'succeeded', 'node-a'), (batches[e1][1], 'processing', 'node-b'),
             (batches[e2][0], 'processing', 'node-a'), (batches[e3][0], 'failed', 'node-b'),
             (batches[e3][1], 'scheduled', 'node-a')]
    for batch_id, state, node in moves:
        broker.db['batches'].update_one({'_id': ObjectId(batch_id)}, {'$set': {'state': state, 'node': node}})
    for experiment_id in experiments:  # the counters the life cycle keeps with each move
        recount(broker.db, experiment_id)
    return {'alice': alice, 'bob': bob, 'admin': admin, 'experiments': experiments, 'batches': batches,
            'users': {alice.username, bob.username}}


def ids(response):
    assert response.status_code == 200, response.text
    return [doc['_id'] for doc in response.json()]


def mine(data, listed):
    """Only the documents of this module's users (the admin sees every test's documents)."""
    return [doc['_id'] for doc in listed if doc['username'] in data['users']]


def test_experiments_newest_first_and_ascending(broker, data):
    e1, e2, e3 = data['experiments']
    assert ids(broker.get(data['alice'], '/experiments')) == [e3, e1]
    assert ids(broker.get(data['alice'], '/experiments', ascending='true')) == [e1, e3]
    assert mine(data, broker.get(data['admin'], '/experiments', limit=1000).json())[:3] == [e3, e2, e1]


def test_batches_sorted_by_registration_then_id(broker, data):
    e1, _, e3 = data['experiments']
    listed = ids(broker.get(data['alice'], '/batches'))
    assert listed == list(reversed(data['batches'][e1] + data['batches'][e3]))
    assert ids(broker.get(data['alice'], '/batches', ascending='true')) == data['batches'][e1] + data['batches'][e3]


def test_skip_and_limit_pages_cover_everything_once(broker, data):
    everything = ids(broker.get(data['alice'], '/batches'))
    pages = []
    for skip in range(0, len(everything), 2):
        pages += ids(broker.get(data['alice'], '/batches', skip=skip, limit=2))
    assert pages == everything
    assert ids(broker.get(data['alice'], '/batches', skip=len(everything))) == []
    assert ids(broker.get(data['alice'], '/experiments', skip=1, limit=1)) == [data['experiments'][0]]


def test_default_limit_and_maximum(broker):
    carol = broker.user_session('carol')
    broker.submit(carol, batches=120)
    assert len(broker.get(carol, '/batches').json()) == 100
    assert len(broker.get(carol, '/batches', limit=1000).json()) == 120
    too_many = broker.get(carol, '/batches', limit=1001)
    assert too_many.status_code == 400 and 'limit' in too_many.json()['message']
    assert broker.get(carol, '/batches/count').json() == {'count': 120}


@pytest.mark.parametrize('params, expected', [
    ({'state': 'processing'}, lambda b, e: [b[e[0]][1]]),
    ({'state': 'registered'}, lambda b, e: [b[e[0]][2]] + b[e[2]][2:]),
    ({'node': 'node-a'}, lambda b, e: [b[e[0]][0], b[e[2]][1]]),
    ({'node': 'node-b', 'state': 'failed'}, lambda b, e: [b[e[2]][0]]),
    ({'experimentId': 0}, lambda b, e: b[e[0]]),
    ({'experimentId': 2, 'state': 'registered'}, lambda b, e: b[e[2]][2:]),
    ({'state': 'cancelled'}, lambda b, e: []),
])
def test_batch_filters_and_counts(broker, data, params, expected):
    batches, experiments = data['batches'], data['experiments']
    if 'experimentId' in params:
        params = dict(params, experimentId=experiments[params['experimentId']])
    want = set(expected(batches, experiments))
    assert set(ids(broker.get(data['alice'], '/batches', **params))) == want
    assert broker.get(data['alice'], '/batches/count', **params).json() == {'count': len(want)}
    listed = broker.get(data['alice'], '/batches', **params).json()
    for key, value in params.items():
        assert all(doc[key] == value for doc in listed)


def test_username_filter(broker, data):
    alice, bob, admin = data['alice'], data['bob'], data['admin']
    e1, e2, e3 = data['experiments']
    assert ids(broker.get(admin, '/experiments', username=bob.username)) == [e2]
    assert set(ids(broker.get(admin, '/batches', username=bob.username))) == set(data['batches'][e2])
    assert broker.get(admin, '/batches/count', username=alice.username).json() == {'count': 7}
    assert broker.get(admin, '/experiments/count', username=alice.username).json() == {'count': 2}
    # a non-admin asking for someone else's work sees nothing, for their own the same as without the filter
    assert ids(broker.get(alice, '/batches', username=bob.username)) == []
    assert broker.get(alice, '/experiments/count', username=bob.username).json() == {'count': 0}
    assert ids(broker.get(alice, '/experiments', username=alice.username)) == [e3, e1]


def test_admin_sees_everyones_batches(broker, data):
    every = broker.get(data['admin'], '/batches', limit=1000).json()
    assert {doc['username'] for doc in every} >= data['users']
    assert broker.get(data['admin'], '/batches/count', state='processing').json()['count'] >= 2
    e2 = data['experiments'][1]
    assert broker.get(data['admin'], '/experiments/' + e2).status_code == 200


@pytest.mark.parametrize('path, params, name', [
    ('/batches', {'experimentId': 'not-an-id'}, 'experimentId'),
    ('/batches/count', {'experimentId': '0' * 23}, 'experimentId'),
    ('/batches', {'state': 'running'}, 'state'),
    ('/batches/count', {'state': ''}, 'state'),
    ('/batches', {'skip': '-1'}, 'skip'),
    ('/batches', {'skip': 'ten'}, 'skip'),
    ('/experiments', {'skip': str(2 ** 70)}, 'skip'),
    ('/batches', {'limit': '0'}, 'limit'),
    ('/experiments', {'limit': '1.5'}, 'limit'),
    ('/batches', {'ascending': 'maybe'}, 'ascending'),
    ('/batches/not-an-id', {}, 'batch id'),
    ('/batches/not-an-id/stdout', {}, 'batch id'),
    ('/experiments/123', {}, 'experiment id'),
])
def test_bad_parameters_are_400_naming_the_parameter(broker, data, path, params, name):
    response = broker.get(data['alice'], path, **params)
    assert response.status_code == 400, response.text
    assert name in response.json()['message']
    delete = data['alice'].delete(broker.url + '/batches/xyz', timeout=10)
    assert delete.status_code == 400 and 'batch id' in delete.json()['message']


@pytest.mark.parametrize('path', ['/batches/{}', '/batches/{}/stdout', '/batches/{}/stderr', '/experiments/{}'])
def test_unknown_ids_are_404(broker, data, path):
    response = broker.get(data['alice'], path.format(ObjectId()))
    assert response.status_code == 404 and 'not found' in response.json()['message']
    assert data['alice'].delete(broker.url + '/batches/{}'.format(ObjectId()), timeout=10).status_code == 404


@pytest.fixture(scope='module')
def sparse(broker):
    """Three experiments of 40 batches; seven batches, spread over them, failed on two nodes."""
    dave = broker.user_session('dave')
    experiments = [broker.submit(dave, batches=40) for _ in range(3)]
    everything = [doc['_id'] for doc in broker.db['batches'].find({'username': dave.username}).sort('seq', 1)]
    failed = [everything[i] for i in (0, 1, 39, 40, 77, 100, 119)]
    for i, batch_id in enumerate(failed):
        broker.db['batches'].update_one({'_id': ObjectId(batch_id)},
                                        {'$set': {'state': 'failed', 'node': 'node-{}'.format(i % 2)}})
    return dave, experiments, [str(i) for i in everything], [str(i) for i in failed]


@pytest.mark.parametrize('ascending', [False, True])
def test_pages_of_sparse_matches_are_exact_at_every_skip(broker, sparse, ascending):
    """A filter that matches few batches makes a page read several ranges; skip may end inside any of them."""
    dave, experiments, everything, failed = sparse
    order = (lambda ids: ids) if ascending else (lambda ids: list(reversed(ids)))
    flag = 'true' if ascending else 'false'
    cases = [({'state': 'failed'}, failed), ({'node': 'node-1'}, failed[1::2]),
             ({'experimentId': experiments[1], 'state': 'failed'}, failed[3:5]),
             ({'experimentId': experiments[2]}, everything[80:]), ({}, everything)]
    for params, expected in cases:
        expected = order(expected)
        for skip in range(0, len(expected) + 1, max(1, len(expected) // 7)):
            for limit in (1, 3, 100):
                listed = ids(broker.get(dave, '/batches', skip=skip, limit=limit, ascending=flag, **params))
                assert listed == expected[skip:skip + limit], (params, skip, limit)


def test_a_page_reads_one_range_as_wide_as_itself(broker, mongo_server):
    """What keeps GET /batches?limit=100 fast with 100,000 batches: the first page of a list is one read of the
    100 newest sequence numbers (with an index on them), not a read of every batch, whatever the server."""
    erin = broker.user_session('erin')
    experiments = [broker.submit(erin, batches=120), broker.submit(erin, batches=40)]
    everything = [str(doc['_id']) for doc in broker.db['batches'].find({'username': erin.username}).sort('seq', 1)]
    commands = Aggregates()
    client = pymongo.MongoClient(mongo_server.host, mongo_server.port, directConnection=True,
                                 event_listeners=[commands])
    try:
        collection = client[broker.db.name]['batches']
        with flask.Flask(__name__).test_request_context('/batches?limit=100'):
            page = find_page(collection, {'username': erin.username}, LIST_WITHOUT)
        assert [str(doc['_id']) for doc in page] == list(reversed(everything))[:100]
        [pipeline] = commands.pipelines
        newest = last_seq(collection.database, 'batches')
        assert pipeline[0] == {'$match': {'username': erin.username, 'seq': {'$gte': newest - 99, '$lte': newest}}}
        assert 'history' not in page[0] and 'inputs' not in page[0]
        # a batch list of one experiment reads only the range of its batches
        block = [doc['seq'] for doc in collection.find({'experimentId': experiments[1]}, {'seq': 1})]
        commands.pipelines.clear()
        with flask.Flask(__name__).test_request_context('/batches?limit=10&skip=35'):
            page = find_page(collection, {}, LIST_WITHOUT, seq_range=(min(block), max(block)))
        assert [str(doc['_id']) for doc in page] == list(reversed(everything[120:]))[35:]
        for pipeline in commands.pipelines:
            assert min(block) <= pipeline[0]['$match']['seq']['$gte'] <= pipeline[0]['$match']['seq']['$lte'] <= max(block)
    finally:
        client.close()


class Aggregates(pymongo.monitoring.CommandListener):
    """The pipelines of the aggregate commands a client sends."""

    def __init__(self):
        self.pipelines = []

    def started(self, event):
        if event.command_name == 'aggregate':
            self.pipelines.append(event.command['pipeline'])

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass
