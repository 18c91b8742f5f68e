"""Users who do not trust each other share one agency (issue 12): a private image one user pulled is not run for
another without credentials the registry accepts; batch containers are confined (capabilities, privileges, pids,
CPU, log size) and leave nothing behind (anonymous volumes); a fork loop stays inside its container."""
import threading
import time

import pytest

from tests import reds
from tests.integration.cluster import batches_of, command_red, submit, user_session
from localcluster.registry import Registry

ALICE, ALICE_PASSWORD = 'reg-alice', 'Alice-Registry-Pw1'
BOB, BOB_PASSWORD = 'reg-bob', 'Bob-Registry-Pw2'
LABEL = 'cc-agency.batch'


@pytest.fixture(scope='module')
def registry(engine):
    with Registry(users={ALICE: ALICE_PASSWORD, BOB: BOB_PASSWORD}) as registry:
        client = engine.client()
        try:
            registry.image = registry.push(client, reds.TEST_IMAGE, 'team/private:1', user=ALICE)
        finally:
            client.close()
        yield registry


def image_red(image, auth=None, script="print('ran')"):
    red = command_red([script], image=image)
    if auth is not None:
        red['container']['settings']['image']['auth'] = auth
    return red


def reason_of(batch):
    return ' '.join(batch['history'][-1]['debugInfo'] or [])


def test_a_pulled_private_image_runs_only_for_experiments_the_registry_accepts(make_agency, engine, registry):
    agency = make_agency({'node1': {'base_url': engine.base_url, 'network': 'none'}}, attempts_to_fail=3)
    alice = user_session(agency, 'alice')
    bob = user_session(agency, 'bob')

    [mine] = batches_of(agency, alice, submit(agency, alice, image_red(
        registry.image, {'username': ALICE, 'password': ALICE_PASSWORD})), 1)
    assert mine['state'] == 'succeeded', mine['history']
    client = engine.client()
    try:
        assert client.images.get(registry.image).attrs['RepoDigests']  # on the node now, pulled from the registry
    finally:
        client.close()

    for auth in (None, {'username': BOB, 'password': 'not-his-password'}, {'username': ALICE, 'password': 'guess'}):
        [theirs] = batches_of(agency, bob, submit(agency, bob, image_red(registry.image, auth)), 1)
        assert theirs['state'] == 'failed' and theirs['attempts'] == 1, theirs['history']  # at once, no retry
        reason = reason_of(theirs)
        assert 'registry refused access to {} for this experiment'.format(registry.image) in reason, reason
        assert ALICE not in reason and 'alice' not in reason.lower() and ALICE_PASSWORD not in reason and mine['experimentId'] not in reason

    # bob's own registry account is accepted by this registry (htpasswd: any user may pull), so it runs
    [accepted] = batches_of(agency, bob, submit(agency, bob, image_red(
        registry.image, {'username': BOB, 'password': BOB_PASSWORD})), 1)
    assert accepted['state'] == 'succeeded', accepted['history']
    # an image the operator put on the node without a registry runs for everyone, without credentials
    [loaded] = batches_of(agency, bob, submit(agency, bob, image_red(reds.TEST_IMAGE)), 1)
    assert loaded['state'] == 'succeeded', loaded['history']
    # alice's next experiment still runs (the registry's yes for her credentials is cached)
    [again] = batches_of(agency, alice, submit(agency, alice, image_red(
        registry.image, {'username': ALICE, 'password': ALICE_PASSWORD})), 1)
    assert again['state'] == 'succeeded', again['history']


@pytest.fixture(scope='module')
def volume_image(engine):
    """An image that declares a VOLUME (built on the node from the test image: no registry)."""
    client = engine.client()
    container = client.containers.create(reds.TEST_IMAGE, command=['true'], network_mode='none')
    try:
        container.commit(repository='local/cc-volume', tag='1', changes=['VOLUME /scratch'])
    finally:
        container.remove()
        client.close()
    return 'local/cc-volume:1'


def running_container(client, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        running = client.api.containers(filters={'label': LABEL, 'status': 'running'})
        if running:
            return client.api.inspect_container(running[0]['Id'])
        time.sleep(0.05)
    raise AssertionError('no batch container ran')


def test_batch_containers_are_confined_and_leave_no_volume(make_agency, engine, volume_image):
    node = {'base_url': engine.base_url, 'network': 'none', 'cap_add': ['CHOWN'], 'pids_limit': 64, 'cpus': 0.5,
            'container_log_mib': 4}
    agency = make_agency({'node1': node})
    alice = user_session(agency)
    client = engine.client()
    try:
        experiment_id = submit(agency, alice, command_red(['import time; time.sleep(3)'], image=volume_image))
        info = running_container(client)
        host = info['HostConfig']
        assert host['CapDrop'] == ['ALL'] and host['CapAdd'] == ['CHOWN']
        assert 'no-new-privileges' in host['SecurityOpt']
        assert host['PidsLimit'] == 64 and host['NanoCpus'] == 500_000_000
        assert host['LogConfig'] == {'Type': 'json-file', 'Config': {'max-size': '4m', 'max-file': '2'}}
        [volume] = [mount['Name'] for mount in info['Mounts'] if mount['Type'] == 'volume']
        assert volume in [v.name for v in client.volumes.list()]

        [batch] = batches_of(agency, alice, experiment_id, 1)
        assert batch['state'] == 'succeeded', batch['history']
        deadline = time.monotonic() + 10
        while client.api.containers(all=True, filters={'label': LABEL}) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.api.containers(all=True, filters={'label': LABEL}) == []
        assert volume not in [v.name for v in client.volumes.list()]  # removed with its container
    finally:
        client.close()


FORK_LOOP = '''
import os, sys, time
end = time.time() + 4
main = os.getpid()
limited = False
while time.time() < end:
    try:
        os.fork()
    except OSError:
        limited = True
        time.sleep(0.05)
if os.getpid() != main:
    os._exit(0)
print('the pids limit held' if limited else 'no limit', file=sys.stderr)
sys.exit(3 if limited else 0)
'''


class PidsSampler(threading.Thread):
    """The most processes the engine reports in any batch container while it runs."""

    def __init__(self, engine):
        super().__init__(daemon=True)
        self.client = engine.client()
        self.most = {}
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            for container in self.client.api.containers(filters={'label': LABEL, 'status': 'running'}):
                try:
                    stats = self.client.api.stats(container['Id'], stream=False, one_shot=True)
                except Exception:  # it ended meanwhile
                    continue
                current = (stats.get('pids_stats') or {}).get('current') or 0
                self.most[container['Id']] = max(self.most.get(container['Id'], 0), current)
            self.halt.wait(0.2)

    def stop(self):
        self.halt.set()
        self.join(30)
        self.client.close()


def test_a_fork_loop_stays_in_its_container_while_another_batch_succeeds(make_agency, engine):
    node = {'base_url': engine.base_url, 'network': 'none', 'pids_limit': 48, 'cpus': 1}
    agency = make_agency({'node1': node}, attempts_to_fail=1)
    alice = user_session(agency)
    sampler = PidsSampler(engine)
    sampler.start()
    try:
        red = command_red([FORK_LOOP, "import time; time.sleep(2); print('fine')"])
        fork, other = batches_of(agency, alice, submit(agency, alice, red), 2, timeout=180)
    finally:
        sampler.stop()
    by_script = {b['inputs']['script']: b for b in (fork, other)}
    fork, other = by_script[FORK_LOOP], by_script["import time; time.sleep(2); print('fine')"]
    assert other['state'] == 'succeeded', other['history']
    assert fork['state'] == 'failed', fork['history']  # it hit the limit (exit code 3)
    assert 'code 3' in reason_of(fork) and 'the pids limit held' in reason_of(fork), reason_of(fork)
    # both ran at once on the node
    started = [next(h['time'] for h in b['history'] if h['state'] == 'processing') for b in (fork, other)]
    ended = [b['history'][-1]['time'] for b in (fork, other)]
    assert max(started) < min(ended)
    assert 10 < max(sampler.most.values()) <= 48, sampler.most  # the loop forked up to the limit, not beyond


def test_the_operator_is_warned_of_plain_tcp_and_host_network_at_start(make_agency, engine):
    agency = make_agency({'local': {'base_url': engine.base_url, 'network': 'host'},
                          'remote': {'base_url': 'tcp://127.0.0.1:9', 'network': 'none'}})
    deadline = time.monotonic() + 30
    while 'node remote' not in agency.log('controller') and time.monotonic() < deadline:
        time.sleep(0.1)
    log = agency.log('controller')
    assert 'node remote: the engine at tcp://127.0.0.1:9 is reached over plain TCP without TLS' in log
    assert 'node local: network "host": a batch can reach every service' in log
    assert 'node local: the engine' not in log and 'node remote: network' not in log
