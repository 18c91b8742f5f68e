"""What the broker adds for its dashboard: the dashboard's files at /ui/ (strict CSP, no login, nothing outside its
folder), per-state `batchCounts` of experiments from the database, batches with their `timeline`, and who a token
is for."""
import requests
from bson import ObjectId

from cc_agency.batch_counts import batch_counts, recount_unfinished
from cc_agency.db import BATCHES, EXPERIMENTS
from cc_agency.transitions import AttemptFailed, BatchLifecycle
from tests.integration.api_support import PASSWORD, broker  # noqa: F401 (fixture)

STATES = ('registered', 'scheduled', 'processing', 'succeeded', 'failed', 'cancelled')


def test_dashboard_page_is_served_without_login_with_a_strict_csp(broker):
    response = requests.get(broker.url + '/ui/', timeout=10)
    assert response.status_code == 200 and response.headers['Content-Type'].startswith('text/html')
    policy = response.headers['Content-Security-Policy']
    assert "default-src 'self'" in policy and "script-src 'self'" in policy and 'unsafe-inline' not in policy
    assert '<script type="module" src="app.js"></script>' in response.text
    assert 'http://' not in response.text and 'https://' not in response.text  # nothing from elsewhere


def test_dashboard_assets_have_their_content_types(broker):
    for path, content_type in (('app.js', 'javascript'), ('views/nodes.js', 'javascript'), ('style.css', 'text/css')):
        response = requests.get(broker.url + '/ui/' + path, timeout=10)
        assert response.status_code == 200 and content_type in response.headers['Content-Type'], path
        assert response.headers['X-Content-Type-Options'] == 'nosniff'


def test_dashboard_serves_nothing_outside_its_folder(broker):
    for path in ('/ui/nothing.js', '/ui/../app.py', '/ui/%2e%2e/factory.py', '/ui/views', '/ui/..%2f..%2fsetup.py'):
        response = requests.get(broker.url + path, timeout=10)
        assert response.status_code == 404, path
        assert response.json()['message'], path
        assert 'Blueprint' not in response.text and 'import' not in response.text


def test_a_failed_login_from_the_dashboard_has_no_basic_challenge(broker):
    """The browser would show its own password dialog over the login form on a Basic challenge."""
    wrong = requests.get(broker.url + '/token', auth=('nobody', 'wrong'), timeout=10)
    assert wrong.status_code == 401 and wrong.headers['WWW-Authenticate'].startswith('Basic')
    dashboard = requests.get(broker.url + '/token', auth=('nobody', 'wrong'), timeout=10,
                             headers={'X-Requested-With': 'cc-agency-ui'})
    assert dashboard.status_code == 401 and 'WWW-Authenticate' not in dashboard.headers
    assert dashboard.json()['message'] == 'invalid credentials'


def test_token_says_who_it_is_for(broker):
    """The dashboard shows who is logged in, and the user filter only to admins."""
    for username, is_admin in ((broker.new_user('tok'), False), (broker.new_user('tokadmin', admin=True), True)):
        answer = requests.get(broker.url + '/token', auth=(username, PASSWORD), timeout=10).json()
        assert answer['username'] == username and answer['isAdmin'] is is_admin and answer['token']


def _move(db, batch_id, *states):
    """Move a batch through its first attempt by the life cycle's own operations (no controller runs here)."""
    lifecycle = BatchLifecycle(db, attempts_to_fail=1)
    moves = {'scheduled': lambda b: lifecycle.schedule(b['_id'], b['experimentId'], 1, 'node1', ()),
             'processing': lambda b: lifecycle.start(b, 1, 'node1'),
             'succeeded': lambda b: lifecycle.succeed(b, 1, 'node1', None),
             'failed': lambda b: lifecycle.fail_attempt(b, None, 1, 'node1', AttemptFailed(['exit 1'])) == 'failed',
             'cancelled': lifecycle.cancel}
    for state in states:
        assert moves[state](db[BATCHES].find_one({'_id': ObjectId(batch_id)}))


def test_experiments_carry_batch_counts_by_state(broker):
    session = broker.user_session('counts')
    experiment_id = broker.submit(session, batches=6)
    other_id = broker.submit(session, batches=2)
    ids = [b['_id'] for b in broker.get(session, '/batches', experimentId=experiment_id, ascending='true').json()]
    _move(broker.db, ids[0], 'scheduled', 'processing', 'succeeded')
    _move(broker.db, ids[1], 'scheduled', 'processing', 'failed')
    _move(broker.db, ids[2], 'cancelled')
    _move(broker.db, ids[3], 'scheduled', 'processing')
    _move(broker.db, ids[4], 'scheduled')

    expected = {'registered': 1, 'scheduled': 1, 'processing': 1, 'succeeded': 1, 'failed': 1, 'cancelled': 1}
    one = broker.get(session, '/experiments/' + experiment_id).json()
    assert one['batchCounts'] == expected and list(one['batchCounts']) == list(STATES)
    listed = {e['_id']: e['batchCounts'] for e in broker.get(session, '/experiments').json()}
    assert listed == {experiment_id: expected, other_id: dict(dict.fromkeys(STATES, 0), registered=2)}


def test_batch_counts_of_no_experiment_and_of_an_unknown_one(broker):
    unknown = str(ObjectId())
    assert batch_counts(broker.db, []) == {}
    assert batch_counts(broker.db, [{'_id': unknown}]) == {unknown: dict.fromkeys(STATES, 0)}


def test_counters_a_dead_process_left_one_off_are_mended_by_a_recount(broker):
    """The counters follow each transition in a second write; the controller recounts unfinished experiments
    when it starts. An experiment stored before counters existed is counted from its batches."""
    session = broker.user_session('recount')
    experiment_id = broker.submit(session, batches=3)
    first = broker.get(session, '/batches', experimentId=experiment_id, ascending='true').json()[0]['_id']
    _move(broker.db, first, 'scheduled')
    right = {'registered': 2, 'scheduled': 1, 'processing': 0, 'succeeded': 0, 'failed': 0, 'cancelled': 0}
    assert broker.get(session, '/experiments/' + experiment_id).json()['batchCounts'] == right
    broker.db[EXPERIMENTS].update_one({'_id': ObjectId(experiment_id)}, {'$inc': {'stateCounts.scheduled': 1}})
    assert broker.get(session, '/experiments/' + experiment_id).json()['batchCounts']['scheduled'] == 2
    assert recount_unfinished(broker.db) >= 1
    assert broker.get(session, '/experiments/' + experiment_id).json()['batchCounts'] == right
    broker.db[EXPERIMENTS].update_one({'_id': ObjectId(experiment_id)}, {'$unset': {'stateCounts': 1}})
    assert broker.get(session, '/experiments/' + experiment_id).json()['batchCounts'] == right


def test_batches_with_timeline_have_their_states_over_time_without_debug_info(broker):
    session = broker.user_session('timeline')
    experiment_id = broker.submit(session, batches=2)
    first = broker.get(session, '/batches', experimentId=experiment_id, ascending='true').json()[0]['_id']
    _move(broker.db, first, 'scheduled', 'processing', 'failed')

    plain = broker.get(session, '/batches', experimentId=experiment_id, ascending='true').json()
    assert all('timeline' not in b and 'history' not in b for b in plain)
    listed = broker.get(session, '/batches', experimentId=experiment_id, ascending='true', timeline='true').json()
    assert [e['state'] for e in listed[0]['timeline']] == ['registered', 'scheduled', 'processing', 'failed']
    assert [e['node'] for e in listed[0]['timeline']] == [None, 'node1', 'node1', 'node1']
    times = [e['time'] for e in listed[0]['timeline']]
    assert times == sorted(times)
    assert all(set(e) == {'state', 'time', 'node'} for e in listed[0]['timeline'])
    assert [e['state'] for e in listed[1]['timeline']] == ['registered']
    assert 'history' not in listed[0] and 'inputs' not in listed[0]
    assert broker.get(session, '/batches', timeline='maybe').status_code == 400
