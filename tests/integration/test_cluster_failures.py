"""Images from a real registry on loopback (pulled once per node; not found and unauthorized fail at once), invalid
connector access fails at once, retries follow attempts_to_fail and retryIfFailed, connector checks run once."""
import time

import pytest
from bson import ObjectId

from tests import reds
from tests.integration.cluster import batches_of, command_red, nodes_of, submit, user_session, wait_nodes_online
from localcluster.registry import Registry

REGISTRY_USER, REGISTRY_PASSWORD = 'reg-alice', 'reg-secret'


@pytest.fixture(scope='module')
def registry(engines3):
    with Registry(users={REGISTRY_USER: REGISTRY_PASSWORD}) as registry:
        client = engines3[0].client()
        try:
            registry.image = registry.push(client, reds.TEST_IMAGE, 'private/cc-test:1', user=REGISTRY_USER)
        finally:
            client.close()
        yield registry


def pulls_since(engine, since):
    client = engine.client()
    try:
        events = client.api.events(since=since, until=int(time.time()) + 1, decode=True,
                                   filters={'type': 'image', 'event': 'pull'})
        return [event['Actor']['ID'] for event in events]
    finally:
        client.close()


def remove_image(engines, reference):
    for engine in engines:
        client = engine.client()
        try:
            client.images.remove(reference, force=True)
        except Exception:  # not there
            pass
        finally:
            client.close()


def test_private_image_is_pulled_once_per_node(make_agency, engines3, registry):
    remove_image(engines3, registry.image)
    agency = make_agency(nodes_of(engines3))
    alice = user_session(agency)
    wait_nodes_online(agency, alice, [engine.name for engine in engines3])
    since = int(time.time()) - 1
    red = command_red(['import time; time.sleep(0.2)'] * 9, image=registry.image)
    red['container']['settings']['image']['auth'] = {'username': REGISTRY_USER, 'password': REGISTRY_PASSWORD}
    batches = batches_of(agency, alice, submit(agency, alice, red), 9)
    assert [b['state'] for b in batches] == ['succeeded'] * 9, batches[0]['history'][-1]
    assert {b['node'] for b in batches} == {'node1', 'node2', 'node3'}
    for engine in engines3:
        assert pulls_since(engine, since) == [registry.image], engine.name
    # a second experiment with the same image pulls nothing more
    since = int(time.time()) + 1
    time.sleep(1.1)
    batches = batches_of(agency, alice, submit(agency, alice, red), 9)
    assert [b['state'] for b in batches] == ['succeeded'] * 9
    assert all(pulls_since(engine, since) == [] for engine in engines3)


@pytest.mark.parametrize('case', ['not found', 'no credentials', 'wrong password'])
def test_image_errors_fail_at_once(make_agency, engines3, registry, case):
    agency = make_agency(nodes_of(engines3[:1]), attempts_to_fail=3)
    alice = user_session(agency)
    image = registry.url('private/no-such-image:1') if case == 'not found' else registry.image
    remove_image(engines3[:1], image)
    red = command_red(['pass'], image=image)
    if case != 'no credentials':
        password = 'wrong' if case == 'wrong password' else REGISTRY_PASSWORD
        red['container']['settings']['image']['auth'] = {'username': REGISTRY_USER, 'password': password}
    [batch] = batches_of(agency, alice, submit(agency, alice, red), 1)
    assert batch['state'] == 'failed' and batch['attempts'] == 1, batch['history']
    reason = ' '.join(batch['history'][-1]['debugInfo'])
    assert 'could not be pulled' in reason and image in reason
    expected = {'not found': ('not found', 'manifest unknown'),
                'no credentials': ('no basic auth credentials', 'unauthorized', 'authentication required'),
                'wrong password': ('unauthorized', 'authentication required')}[case]
    assert any(text in reason.lower() for text in expected), reason
    assert REGISTRY_PASSWORD not in str(batch) and 'wrong' not in reason


def test_invalid_connector_access_fails_at_once(make_agency, engine, file_server):
    agency = make_agency({'node1': {'base_url': engine.base_url, 'network': 'host'}}, attempts_to_fail=3)
    alice = user_session(agency)
    red = reds.red([reds.batch(file_server.base_url)])
    del red['batches'][0]['inputs']['infile']['connector']['access']['url']
    [batch] = batches_of(agency, alice, submit(agency, alice, red), 1)
    assert batch['state'] == 'failed' and batch['attempts'] == 1, batch['history']
    assert 'receive-file-validate' in ' '.join(batch['history'][-1]['debugInfo'])


def test_failed_attempts_are_retried_with_every_reason_in_the_history(make_agency, engines3):
    agency = make_agency(nodes_of(engines3), attempts_to_fail=3)
    alice = user_session(agency)
    failing = "import sys; print('attempt failed here', file=sys.stderr); sys.exit(4)"
    [retried] = batches_of(agency, alice, submit(agency, alice, command_red([failing])), 1)
    assert retried['state'] == 'failed' and retried['attempts'] == 3
    failures = [h for h in retried['history'] if h['state'] in ('registered', 'failed') and h['debugInfo']]
    assert len(failures) == 3
    for number, entry in enumerate(failures, 1):
        assert entry['debugInfo'][0].startswith('attempt {} on node'.format(number))
        assert 'attempt failed here' in ' '.join(entry['debugInfo'])

    no_retry = command_red([failing], execution_settings={'retryIfFailed': False})
    [once] = batches_of(agency, alice, submit(agency, alice, no_retry), 1)
    assert once['state'] == 'failed' and once['attempts'] == 1
    [once] = batches_of(agency, alice, submit(agency, alice, command_red([failing]), disableRetry='true'), 1)
    assert once['state'] == 'failed' and once['attempts'] == 1


def test_connector_checks_run_once_per_experiment(make_agency, engine, file_server):
    agency = make_agency({'node1': {'base_url': engine.base_url, 'network': 'host'}})
    alice = user_session(agency)
    batches = []
    for i in range(4):
        file_server.add('/files/checks-{}.txt'.format(i), b'data ')
        batches.append(reds.batch(file_server.base_url, name='checks-{}.txt'.format(i), out='checks-{}.out'.format(i)))
    experiment_id = submit(agency, alice, reds.red(batches))
    done = batches_of(agency, alice, experiment_id, 4)
    assert [b['state'] for b in done] == ['succeeded'] * 4
    with agency.database() as db:
        experiment = db.experiments.find_one({'_id': ObjectId(experiment_id)})
    image = reds.TEST_IMAGE
    assert set(experiment['connectorChecksPassed']) == {
        image, image + '|red-connector-http|cli-version', image + '|red-connector-http|receive-file-validate',
        image + '|red-connector-http|send-file-validate'}
    # the first batch ran alone until its checks passed; the others started while it was still running
    first = min(done, key=lambda b: b['history'][1]['time'])
    others = [b for b in done if b is not first]
    first_end = first['history'][-1]['time']
    assert all(b['history'][1]['time'] > first['history'][1]['time'] for b in others)
    assert any(b['history'][1]['time'] < first_end for b in others), 'the others waited for the whole first batch'
    assert 'connector checks passed' in agency.log('controller')
