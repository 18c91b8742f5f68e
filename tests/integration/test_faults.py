"""Faults injected into real processes: engines die, hang or come back; containers fail; the controller is
killed; the database restarts; wake-ups are lost. Nothing may be lost, run twice at once, or left stuck."""
import time

import pymongo
import pytest
from bson import ObjectId

from cc_agency.controller.engines import ATTEMPT_LABEL, BATCH_LABEL, EXPERIMENT_LABEL
from cc_agency.controller.runner import container_name
from cc_agency.transitions import BatchLifecycle
from tests import reds
from localcluster import DockerEngine, load_images_into, start_engines, stop_engines

SLEEP_SCRIPT = ("import sys, time; a = sys.argv[1:]; time.sleep(int(a[3].split('=')[1])); "
                "open('result.txt', 'w').write(open(a[0]).read() + a[2]); print('slept')")


@pytest.fixture(scope='module')
def fault_engines():
    """Three engines with --live-restore (containers survive an engine restart, as in production set-ups)."""
    nodes = start_engines(3, names=['fault1', 'fault2', 'fault3'], extra_args=['--live-restore'])
    try:
        load_images_into(nodes)
        yield nodes
    finally:
        for node in nodes:
            node.resume()
        stop_engines(nodes)


@pytest.fixture
def cluster(make_agency, fault_engines):
    engines = {'node{}'.format(i + 1): engine for i, engine in enumerate(fault_engines)}
    agency = make_agency({name: {'base_url': engine.base_url, 'network': 'host'} for name, engine in engines.items()})
    agency.create_user('carol', 'carol-pw')
    return agency, agency.session('carol', 'carol-pw'), engines


def submit(agency, session, red, **params):
    response = session.post(agency.url + '/red', json=red, params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()['experimentId']


def sleeping_red(file_server, count, seconds, tag):
    batches = []
    for i in range(count):
        file_server.add('/files/{}-{}.txt'.format(tag, i), b'in')
        batches.append(reds.batch(file_server.base_url, name='{}-{}.txt'.format(tag, i),
                                  out='{}-{}.out'.format(tag, i), word='w', times=seconds, script=SLEEP_SCRIPT))
    return reds.red(batches)


def wait_for(predicate, timeout, message):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(message)


def batches_of(agency, session, experiment_id):
    return session.get(agency.url + '/batches', params={'experimentId': experiment_id, 'limit': 1000}).json()


def full(agency, session, batch_id):
    return session.get(agency.url + '/batches/' + batch_id).json()


def node_state(agency, session, name):
    return next(n for n in session.get(agency.url + '/nodes').json() if n['nodeName'] == name)


def containers_of(engine, batch_id):
    client = engine.client()
    try:
        # sparse: no inspect of each listed container, which fails when the controller removes one in between
        return client.containers.list(all=True, sparse=True, filters={'label': 'cc-agency.batch={}'.format(batch_id)})
    finally:
        client.close()


def processing_intervals(batch):
    """(node, start, end) of each attempt that reached processing, from the history."""
    intervals, current = [], None
    for entry in batch['history']:
        if entry['state'] == 'processing':
            current = (entry['node'], entry['time'])
        elif current is not None:
            intervals.append((current[0], current[1], entry['time']))
            current = None
    return intervals


def test_engine_killed_retries_elsewhere_and_node_comes_back(cluster, file_server):
    agency, session, engines = cluster
    experiment_id = submit(agency, session, sleeping_red(file_server, 1, 6, 'kill'))
    [batch] = wait_for(lambda: [b for b in batches_of(agency, session, experiment_id) if b['state'] == 'processing'],
                       30, 'batch never processing')
    lost_node = batch['node']
    killed_at = time.time()
    engines[lost_node].kill()

    wait_for(lambda: node_state(agency, session, lost_node)['state'] == 'offline', 10, 'node not offline')
    assert time.time() - killed_at < 6
    history = node_state(agency, session, lost_node)['history']
    assert history[-1]['state'] == 'offline' and history[-1]['debugInfo']

    done = agency.wait_terminal(session, experiment_id, 1, timeout=60)
    batch = full(agency, session, done[0]['_id'])
    assert batch['state'] == 'succeeded' and batch['node'] != lost_node and batch['attempts'] == 2
    assert any(lost_node in line for h in batch['history'] for line in (h['debugInfo'] or []))

    # the engine comes back: the node is used again, and the stale container of attempt 1 is removed
    engines[lost_node].start()
    wait_for(lambda: node_state(agency, session, lost_node)['state'] == 'online', 15, 'node not back online')
    wait_for(lambda: not containers_of(engines[lost_node], batch['_id']), 15, 'stale container not removed')
    again = submit(agency, session, sleeping_red(file_server, 3, 0, 'back'))
    finished = agency.wait_terminal(session, again, 3, timeout=60)
    assert {b['state'] for b in finished} == {'succeeded'}
    assert {b['node'] for b in finished} == set(engines)  # spread uses the returned node


def test_engine_hung_does_not_stall_the_others(cluster, file_server):
    agency, session, engines = cluster
    experiment_id = submit(agency, session, sleeping_red(file_server, 1, 5, 'hang'))
    [batch] = wait_for(lambda: [b for b in batches_of(agency, session, experiment_id) if b['state'] == 'processing'],
                       30, 'batch never processing')
    hung_node = batch['node']
    engines[hung_node].pause()
    try:
        wait_for(lambda: node_state(agency, session, hung_node)['state'] == 'offline', 10, 'hung node not offline')
        quick = submit(agency, session, sleeping_red(file_server, 1, 0, 'quick'))
        [quick_batch] = agency.wait_terminal(session, quick, 1, timeout=30)
        assert quick_batch['state'] == 'succeeded' and quick_batch['node'] != hung_node
        [retried] = agency.wait_terminal(session, experiment_id, 1, timeout=60)
        retried = full(agency, session, retried['_id'])
        assert retried['state'] == 'succeeded' and retried['node'] != hung_node and retried['attempts'] == 2
    finally:
        engines[hung_node].resume()
    wait_for(lambda: node_state(agency, session, hung_node)['state'] == 'online', 15, 'node not back online')
    wait_for(lambda: not containers_of(engines[hung_node], batch['_id']), 15, 'stale container not removed')
    # the stale attempt never overwrote the result of the retried one
    assert full(agency, session, batch['_id'])['state'] == 'succeeded'


def test_controller_killed_adopts_records_and_retries(cluster, file_server):
    agency, session, engines = cluster
    experiment_id = submit(agency, session, sleeping_red(file_server, 4, 3, 'ctl'))
    running = wait_for(lambda: [b for b in batches_of(agency, session, experiment_id) if b['state'] == 'processing']
                       if len([b for b in batches_of(agency, session, experiment_id)
                               if b['state'] == 'processing']) == 4 else None, 30, 'batches never all processing')
    agency.stop_controller(kill=True)
    # while the controller is away: one container is removed from outside, the others finish
    vanished = running[0]
    for container in containers_of(engines[vanished['node']], vanished['_id']):
        container.remove(force=True)
    time.sleep(4)
    agency.start_controller()
    done = agency.wait_terminal(session, experiment_id, 4, timeout=60)
    assert {b['state'] for b in done} == {'succeeded'}
    for b in done:
        batch = full(agency, session, b['_id'])
        expected_attempts = 2 if b['_id'] == vanished['_id'] else 1
        assert batch['attempts'] == expected_attempts, batch['history']
        assert [h['state'] for h in batch['history']].count('succeeded') == 1
        intervals = processing_intervals(batch)
        for (_, s1, e1), (_, s2, e2) in zip(intervals, intervals[1:]):
            assert e1 <= s2  # never two attempts at once
    for i in range(4):
        assert file_server.uploaded('/uploads/ctl-{}.out'.format(i)) == b'inw'


def test_controller_killed_between_placing_and_starting_resumes_the_attempt(cluster, file_server):
    """A controller that dies after placing batches but before starting them leaves them `scheduled`, perhaps with a
    created container. Its successor starts that same attempt on that node: once, and without counting another."""
    agency, session, engines = cluster
    agency.stop_controller(kill=True)
    experiment_id = submit(agency, session, sleeping_red(file_server, 2, 0, 'placed'))
    first, second = sorted(b['_id'] for b in batches_of(agency, session, experiment_id))
    with agency.database() as db:
        for batch_id, node in ((first, 'node1'), (second, 'node2')):  # what the dead controller's pass wrote
            assert BatchLifecycle(db).schedule(ObjectId(batch_id), experiment_id, 1, node, gpu_ids=())
    engine_client = engines['node2'].client()
    try:  # ... and the container it had created for the second one, not started
        left = engine_client.containers.create(reds.TEST_IMAGE, ['true'], name=container_name(second, 1), labels={
            BATCH_LABEL: second, ATTEMPT_LABEL: '1', EXPERIMENT_LABEL: experiment_id})
    finally:
        engine_client.close()

    agency.start_controller()
    done = agency.wait_terminal(session, experiment_id, 2, timeout=60)
    assert {b['state'] for b in done} == {'succeeded'}
    for batch_id, node in ((first, 'node1'), (second, 'node2')):
        batch = full(agency, session, batch_id)
        assert batch['attempts'] == 1 and batch['node'] == node, batch['history']
        assert [h['state'] for h in batch['history']] == ['registered', 'scheduled', 'processing', 'succeeded']
        assert session.get(agency.url + '/batches/{}/stdout'.format(batch_id)).text == 'slept\n'
    assert left.id not in [c.id for c in containers_of(engines['node2'], second)]
    assert 'resuming attempt 1' in agency.log('controller')
    assert 'replacing the container of attempt 1' in agency.log('controller')
    for i in range(2):
        assert file_server.uploaded('/uploads/placed-{}.out'.format(i)) == b'inw'


def test_an_attempt_that_crashes_in_the_controller_fails_and_the_controller_goes_on(cluster, file_server):
    """A document the runner cannot handle (here: an experiment whose image was removed from the database) fails
    its attempts with a reason; it is not left scheduled, not resumed for ever, and other batches still run."""
    agency, session, _ = cluster
    agency.stop_controller()
    broken = submit(agency, session, sleeping_red(file_server, 1, 0, 'broken'))
    with agency.database() as db:
        db.experiments.update_one({'_id': ObjectId(broken)}, {'$unset': {'container.settings.image': ''}})
    agency.start_controller()
    [batch] = agency.wait_terminal(session, broken, 1, timeout=60)
    batch = full(agency, session, batch['_id'])
    assert batch['state'] == 'failed' and batch['attempts'] == 3, batch['history']
    reasons = [h['debugInfo'][0] for h in batch['history'] if h['state'] in ('registered', 'failed') and h['debugInfo']]
    assert len(reasons) == 3 and all('the controller failed while running this attempt (KeyError)' in reason
                                     for reason in reasons), reasons
    healthy = submit(agency, session, sleeping_red(file_server, 2, 0, 'healthy'))
    assert {b['state'] for b in agency.wait_terminal(session, healthy, 2, timeout=60)} == {'succeeded'}


def test_lost_wake_up_is_picked_up_by_the_timer(cluster, file_server):
    agency, session, _ = cluster
    agency.stop_controller()
    experiment_id = submit(agency, session, sleeping_red(file_server, 1, 0, 'wake'))  # nobody hears this wake-up
    time.sleep(1)
    agency.start_controller()
    [batch] = agency.wait_terminal(session, experiment_id, 1, timeout=30)
    assert batch['state'] == 'succeeded'


def test_database_restart_503_then_recovery(cluster, file_server, mongo_server):
    agency, session, _ = cluster
    experiment_id = submit(agency, session, sleeping_red(file_server, 2, 4, 'db'))
    wait_for(lambda: any(b['state'] == 'processing' for b in batches_of(agency, session, experiment_id)), 30,
             'never processing')
    mongo_server.stop()
    try:
        response = session.get(agency.url + '/batches', params={'experimentId': experiment_id}, timeout=30)
        assert response.status_code == 503 and 'database' in response.json()['message']
        response = session.post(agency.url + '/red', json=sleeping_red(file_server, 1, 0, 'db-down'), timeout=30)
        assert response.status_code == 503
        time.sleep(5)  # the batches finish while the database is away
    finally:
        mongo_server.start()
    done = agency.wait_terminal(session, experiment_id, 2, timeout=60)
    assert {b['state'] for b in done} == {'succeeded'}
    for b in done:
        states = [h['state'] for h in full(agency, session, b['_id'])['history']]
        assert states == ['registered', 'scheduled', 'processing', 'succeeded']
    client = pymongo.MongoClient(mongo_server.host, mongo_server.port, directConnection=True)
    try:
        assert client[agency.conf['mongo']['db']].experiments.count_documents({}) == 1  # the 503 wrote nothing
    finally:
        client.close()


OOM_SCRIPT = "x = bytearray(600 * 1024 * 1024); x[::4096] = b'1' * len(x[::4096]); print('survived')"


def test_container_faults(cluster, file_server):
    agency, session, engines = cluster
    # OOM: more than its ram
    file_server.add('/files/oom.txt', b'x')
    oom = submit(agency, session, reds.red([reds.batch(file_server.base_url, name='oom.txt', script=OOM_SCRIPT)]))
    # killed from outside, retry disabled
    kill_red = sleeping_red(file_server, 1, 30, 'killed')
    killed = submit(agency, session, kill_red, disableRetry='1')
    [batch] = wait_for(lambda: [b for b in batches_of(agency, session, killed) if b['state'] == 'processing'],
                       30, 'never processing')
    [container] = containers_of(engines[batch['node']], batch['_id'])
    container.kill()

    [oom_batch] = agency.wait_terminal(session, oom, 1, timeout=60)
    oom_batch = full(agency, session, oom_batch['_id'])
    assert oom_batch['state'] == 'failed' and oom_batch['attempts'] == 1
    assert 'memory limit of 256 MiB' in ' '.join(oom_batch['history'][-1]['debugInfo'])

    [killed_batch] = agency.wait_terminal(session, killed, 1, timeout=60)
    killed_batch = full(agency, session, killed_batch['_id'])
    assert killed_batch['state'] == 'failed'
    assert 'killed' in ' '.join(killed_batch['history'][-1]['debugInfo'])
    assert not containers_of(engines[batch['node']], batch['_id'])


def _iptables(action, port):
    import subprocess
    for chain, flag in (('INPUT', '--dport'), ('OUTPUT', '--sport')):
        subprocess.run(['iptables', action, chain, '-i' if chain == 'INPUT' else '-o', 'lo', '-p', 'tcp', flag,
                        str(port), '-j', 'REJECT', '--reject-with', 'tcp-reset'], check=True)


def test_tcp_engine_unreachable_is_like_dead(make_agency, fault_engines, file_server):
    tcp_engine = DockerEngine(name='faulttcp', tcp=True)
    tcp_engine.start()
    try:
        load_images_into([tcp_engine])
        # node0 sorts first, so the first batch goes there (spread, equal RAM, ties by name)
        agency = make_agency({'node0': {'base_url': tcp_engine.tcp_url, 'network': 'host'},
                              'node1': {'base_url': fault_engines[0].base_url, 'network': 'host'}})
        agency.create_user('dave', 'dave-pw')
        session = agency.session('dave', 'dave-pw')
        wait_for(lambda: all(n['state'] == 'online' for n in session.get(agency.url + '/nodes').json()), 20,
                 'nodes not online')
        experiment_id = submit(agency, session, sleeping_red(file_server, 1, 5, 'tcp'))
        [batch] = wait_for(lambda: [b for b in batches_of(agency, session, experiment_id)
                                    if b['state'] == 'processing'], 30, 'never processing')
        assert batch['node'] == 'node0'
        _iptables('-I', tcp_engine.tcp_port)
        try:
            wait_for(lambda: node_state(agency, session, 'node0')['state'] == 'offline', 10, 'node0 not offline')
            [done] = agency.wait_terminal(session, experiment_id, 1, timeout=60)
            done = full(agency, session, done['_id'])
            assert done['state'] == 'succeeded' and done['node'] == 'node1' and done['attempts'] == 2
        finally:
            _iptables('-D', tcp_engine.tcp_port)
        wait_for(lambda: node_state(agency, session, 'node0')['state'] == 'online', 15, 'node0 not back online')
        wait_for(lambda: not containers_of(tcp_engine, batch['_id']), 15, 'stale container not removed')
    finally:
        tcp_engine.stop(remove=True)
