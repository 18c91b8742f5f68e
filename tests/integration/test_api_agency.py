"""API routes whose effect needs the controller and a Docker engine: cancelling a running batch removes its
container, and GET /nodes shows the engine and what runs on it."""
import time

from tests import reds

SLEEP = "import time; print('started', flush=True); time.sleep(120)"
BATCH_LABEL = 'cc-agency.batch'


def containers_of(engine_client, batch_id):
    # the low-level list: containers.list() inspects each one, which fails for one removed meanwhile
    return engine_client.api.containers(all=True, filters={'label': '{}={}'.format(BATCH_LABEL, batch_id)})


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, 'timed out waiting for ' + what
        time.sleep(0.05)


def start_sleeper(agency, session, file_server, name):
    file_server.add('/files/{}.txt'.format(name), b'x')
    red = reds.red([reds.batch(file_server.base_url, name=name + '.txt', out=name + '-out.txt', script=SLEEP)])
    response = session.post(agency.url + '/red', json=red, timeout=30)
    assert response.status_code == 200, response.text
    experiment_id = response.json()['experimentId']
    batch = {}

    def processing():
        batches = session.get(agency.url + '/batches', params={'experimentId': experiment_id}, timeout=10).json()
        batch.update(batches[0] if batches else {})
        return batch.get('state') == 'processing'
    wait_for(processing, 60, 'the batch to run')
    return experiment_id, batch['_id']


def test_cancel_removes_the_running_container_within_seconds(agency, alice, file_server, engine_client):
    _, batch_id = start_sleeper(agency, alice, file_server, 'cancel-me')
    wait_for(lambda: containers_of(engine_client, batch_id), 30, 'the container')

    t0 = time.monotonic()
    response = alice.delete(agency.url + '/batches/' + batch_id, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()['state'] == 'cancelled'
    wait_for(lambda: not containers_of(engine_client, batch_id), 10, 'the container to be removed')
    removed_after_s = time.monotonic() - t0
    assert removed_after_s < 10

    time.sleep(1)  # a late exit of the killed container must not overwrite the cancellation
    batch = alice.get(agency.url + '/batches/' + batch_id, timeout=10).json()
    assert batch['state'] == 'cancelled'
    states = [entry['state'] for entry in batch['history']]
    assert states[:3] == ['registered', 'scheduled', 'processing'] and states[-1] == 'cancelled'
    assert states.count('cancelled') == 1
    again = alice.delete(agency.url + '/batches/' + batch_id, timeout=10)
    assert again.status_code == 409


def test_nodes_show_the_engine_and_its_running_batch(agency, alice, file_server):
    experiment_id, batch_id = start_sleeper(agency, alice, file_server, 'node-view')
    nodes = alice.get(agency.url + '/nodes', timeout=10).json()
    [node] = [n for n in nodes if n['nodeName'] == 'node1']
    assert node['state'] == 'online'
    assert node['ramMiB'] > 256 and node['cpus'] >= 1 and node['gpus'] == []
    [current] = node['currentBatches']
    assert current == {'batchId': batch_id, 'experimentId': experiment_id, 'state': 'processing', 'ramMiB': 256,
                       'ram': 256, 'usedGPUs': None}  # `ram`: cc-agency 9.3's name, which its web UI reads
    assert alice.delete(agency.url + '/batches/' + batch_id, timeout=10).status_code == 200
    wait_for(lambda: not [n for n in alice.get(agency.url + '/nodes', timeout=10).json()
                          if n['nodeName'] == 'node1'][0]['currentBatches'], 10, 'the node to be free')
