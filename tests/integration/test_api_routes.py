"""Every route of the REST API over real HTTP against a broker process and SecantusDB (no controller needed).

States that only the controller reaches (processing on a node, output of a run) are written into the real
database the way the controller writes them; tests/integration/test_api_agency.py runs them for real.
"""
import json

import requests
from bson import ObjectId
from red_val.schemas.red import red_schema

from cc_agency.version import AGENCY_VERSION, RED_VERSION
from tests import reds
from tests.integration.api_support import PASSWORD, broker  # noqa: F401 (fixture)


def test_liveness_needs_no_login(broker):
    response = requests.get(broker.url + '/', timeout=10)
    assert response.status_code == 200
    assert response.headers['Content-Type'] == 'application/json'
    assert response.json() == {'status': 'ok'}


def test_version(broker):
    alice = broker.user_session('alice')
    body = broker.get(alice, '/version').json()
    assert body['agencyVersion'] == AGENCY_VERSION and body['redVersion'] == RED_VERSION
    assert 'connectorCliVersion' in body


def test_token_is_valid_for_the_configured_time(broker):
    username = broker.new_user()
    response = requests.get(broker.url + '/token', auth=(username, 'pw-wrong'), timeout=10)
    assert response.status_code == 401
    body = requests.get(broker.url + '/token', auth=(username, PASSWORD), timeout=10).json()
    assert body['validForSeconds'] == broker.conf['broker']['auth']['tokens_valid_for_seconds']
    assert len(body['token']) >= 40
    stored = broker.db['tokens'].find_one({'username': username})
    assert body['token'] not in str(stored)  # only its hash is stored


def test_schema_red_is_red_vals_schema(broker):
    alice = broker.user_session('alice')
    assert broker.get(alice, '/schema/red').json() == red_schema


def test_post_red_registers_experiment_and_batches(broker):
    alice = broker.user_session('alice')
    response = alice.post(broker.url + '/red', json=reds.red_of(3),
                          params={'disableRetry': 'true', 'disableConnectorValidation': '1'}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()['registrationComplete'] is True  # one chunk: registered by the broker itself
    experiment_id = response.json()['experimentId']

    experiment = broker.get(alice, '/experiments/' + experiment_id).json()
    assert experiment['_id'] == experiment_id
    assert experiment['username'] == alice.username
    assert experiment['batchCount'] == 3
    assert experiment['disableRetry'] is True and experiment['disableConnectorValidation'] is True
    assert experiment['container']['settings']['image']['url'] == reds.TEST_IMAGE
    assert 'batches' not in experiment and 'pendingChunks' not in experiment
    assert experiment['registrationComplete'] is True

    batches = broker.get(alice, '/batches', experimentId=experiment_id, ascending='true').json()
    assert len(batches) == 3
    assert {b['state'] for b in batches} == {'registered'}
    assert all(b['experimentId'] == experiment_id and b['username'] == alice.username for b in batches)

    batch = broker.get(alice, '/batches/' + batches[0]['_id']).json()
    assert batch['history'][0]['state'] == 'registered'
    assert batch['inputs']['word'] == 'ab' and batch['inputs']['infile']['class'] == 'File'


def test_batches_carry_their_index_in_the_reds_batches_list(broker):
    """cc-agency 9.3's `batchesListIndex`, in lists (both orders), one batch and a cancelled one."""
    alice = broker.user_session('alice')
    red = reds.red_of(3)
    experiment_id = broker.submit(alice, batches=3)
    ascending = broker.get(alice, '/batches', experimentId=experiment_id, ascending='true').json()
    assert [b['batchesListIndex'] for b in ascending] == [0, 1, 2]
    assert [b['batchesListIndex'] for b in broker.get(alice, '/batches', experimentId=experiment_id).json()] == \
        [2, 1, 0]
    assert [b['batchesListIndex'] for b in broker.get(alice, '/batches', limit=3).json()] == [2, 1, 0]
    for listed in ascending:
        batch = broker.get(alice, '/batches/' + listed['_id']).json()
        url = red['batches'][batch['batchesListIndex']]['inputs']['infile']['connector']['access']['url']
        assert batch['inputs']['infile']['connector']['access']['url'] == url
    cancelled = alice.delete(broker.url + '/batches/' + ascending[1]['_id'], timeout=10).json()
    assert cancelled['batchesListIndex'] == 1


def test_post_red_defaults_retry_and_validation_on(broker):
    alice = broker.user_session('alice')
    experiment = broker.get(alice, '/experiments/' + broker.submit(alice)).json()
    assert experiment['disableRetry'] is False and experiment['disableConnectorValidation'] is False


def test_post_red_accepts_json_without_content_type(broker):
    """curl -d sends application/x-www-form-urlencoded; the body is still the RED."""
    alice = broker.user_session('alice')
    red = reds.red([reds.batch('http://127.0.0.1:9')])
    response = alice.post(broker.url + '/red', data=json.dumps(red),
                          headers={'Content-Type': 'application/x-www-form-urlencoded'}, timeout=30)
    assert response.status_code == 200, response.text


def test_single_batch_red_without_batches_key(broker):
    alice = broker.user_session('alice')
    red = reds.red([reds.batch('http://127.0.0.1:9')])
    only = red.pop('batches')[0]
    red.update(only)
    response = alice.post(broker.url + '/red', json=red, timeout=30)
    assert response.status_code == 200, response.text
    count = broker.get(alice, '/batches/count', experimentId=response.json()['experimentId']).json()
    assert count == {'count': 1}


def test_counts(broker):
    alice = broker.user_session('alice')
    experiment_id = broker.submit(alice, batches=4)
    broker.submit(alice, batches=2)
    assert broker.get(alice, '/experiments/count').json() == {'count': 2}
    assert broker.get(alice, '/batches/count').json() == {'count': 6}
    assert broker.get(alice, '/batches/count', experimentId=experiment_id).json() == {'count': 4}


def test_cancel_a_registered_batch(broker):
    alice = broker.user_session('alice')
    experiment_id = broker.submit(alice, batches=2)
    first, second = broker.get(alice, '/batches', experimentId=experiment_id, ascending='true').json()

    response = alice.delete(broker.url + '/batches/' + first['_id'], timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()['state'] == 'cancelled'
    batch = broker.get(alice, '/batches/' + first['_id']).json()
    assert batch['state'] == 'cancelled'
    assert [h['state'] for h in batch['history']] == ['registered', 'cancelled']
    assert batch['history'][-1]['debugInfo'] == ['cancelled by user']
    assert broker.get(alice, '/batches/' + second['_id']).json()['state'] == 'registered'

    again = alice.delete(broker.url + '/batches/' + first['_id'], timeout=10)
    assert again.status_code == 409 and 'cancelled' in again.json()['message']


def test_cancel_voids_the_batch_secrets(broker):
    alice = broker.user_session('alice')
    red = reds.red([reds.batch('http://127.0.0.1:9', access_extra={'password': 'very-secret-pw'})])
    experiment_id = alice.post(broker.url + '/red', json=red, timeout=30).json()['experimentId']
    [batch] = broker.get(alice, '/batches', experimentId=experiment_id).json()
    assert alice.delete(broker.url + '/batches/' + batch['_id'], timeout=10).status_code == 200
    assert 'very-secret-pw' not in str(broker.db['batches'].find_one({'experimentId': experiment_id}))


def test_stdout_and_stderr_of_a_batch(broker):
    alice = broker.user_session('alice')
    [batch] = broker.get(alice, '/batches', experimentId=broker.submit(alice)).json()
    not_yet = broker.get(alice, '/batches/{}/stdout'.format(batch['_id']))
    assert not_yet.status_code == 404 and 'not run yet' in not_yet.json()['message']

    broker.db['batch_output'].insert_one({'_id': ObjectId(batch['_id']), 'stdout': 'out line\n', 'stderr': 'err\n'})
    stdout = broker.get(alice, '/batches/{}/stdout'.format(batch['_id']))
    assert stdout.status_code == 200 and stdout.text == 'out line\n'
    assert stdout.headers['Content-Type'].startswith('text/plain')
    assert broker.get(alice, '/batches/{}/stderr'.format(batch['_id'])).text == 'err\n'


def test_nodes_lists_engines_with_resources_and_current_batches(broker):
    alice = broker.user_session('alice')
    bob = broker.user_session('bob')
    experiment_id = broker.submit(alice, batches=2)
    mine, other = broker.get(alice, '/batches', experimentId=experiment_id, ascending='true').json()
    node = 'node-{}'.format(experiment_id[-6:])
    broker.db['nodes'].insert_one({'_id': node, 'state': 'online', 'ramMiB': 4096, 'cpus': 2,
                                   'gpus': [{'id': 0, 'vram': 1024}], 'history': []})
    broker.db['batches'].update_one({'_id': ObjectId(mine['_id'])},
                                    {'$set': {'state': 'processing', 'node': node, 'usedGPUs': [0]}})

    nodes = {n['nodeName']: n for n in broker.get(alice, '/nodes').json()}
    assert nodes[node]['state'] == 'online' and nodes[node]['ramMiB'] == 4096 and nodes[node]['cpus'] == 2
    assert nodes[node]['gpus'] == [{'id': 0, 'vram': 1024}]
    assert nodes[node]['ram'] == 4096  # cc-agency 9.3's name, read by its web UI
    [current] = nodes[node]['currentBatches']
    assert current == {'batchId': mine['_id'], 'experimentId': experiment_id, 'state': 'processing',
                       'ramMiB': 256, 'ram': 256, 'usedGPUs': [0]}
    assert other['_id'] not in str(nodes)

    # another user sees the resources in use, not whose batch uses them
    [anonymous] = {n['nodeName']: n for n in broker.get(bob, '/nodes').json()}[node]['currentBatches']
    assert anonymous['batchId'] is None and anonymous['experimentId'] is None and anonymous['ramMiB'] == 256
