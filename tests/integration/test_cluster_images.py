"""Images on the nodes, with a real registry and a real engine: `image_pull_policy` decides which content of a
re-pushed `:latest` a batch runs (`always`: the new one; `if-not-present`: the node's, while the registry's yes for
the experiment's credentials is cached), and `image_prune_duration` removes an image no batch used for that long,
never one a processing batch or any other container uses nor one that came from no registry, also after a controller
restart (the last uses are in MongoDB)."""
import time

import docker.errors
import pytest

from tests import reds
from tests.integration.cluster import batches_of, command_red, submit, user_session
from localcluster.registry import Registry

PRINT_VERSION = "print('version:' + open('/version').read().strip())"


@pytest.fixture(scope='module')
def client(engine):
    client = engine.client()
    yield client
    client.close()


@pytest.fixture(scope='module')
def registry():
    with Registry() as registry:
        yield registry


@pytest.fixture(scope='module')
def versions(client):
    """make(content) -> the ID of an image of the test image with `content` in /version (committed on the node,
    under local/cca-version:<content>); all are removed at the end."""
    made = []

    def make(content):
        container = client.containers.create(reds.TEST_IMAGE, ['sh', '-c', 'echo {} > /version'.format(content)],
                                             user='0', network_mode='none')
        try:
            container.start()
            assert container.wait(timeout=60)['StatusCode'] == 0
            image = container.commit('local/cca-version', content)
        finally:
            container.remove(force=True)
        made.append(image.id)
        return image.id

    yield make
    for image_id in made:
        try:
            client.images.remove(image_id, force=True)
        except docker.errors.APIError:
            pass


def push_as(client, registry, image_id, name):
    """Push an image to the registry as `name`, as someone else re-pushing it would: the node's own `name`, if it
    has one, stays the image it was."""
    reference = registry.url(name)
    repository, tag = reference.rsplit(':', 1)
    try:
        before = client.images.get(reference).id
    except docker.errors.ImageNotFound:
        before = None
    client.images.get(image_id).tag(repository, tag)
    for line in client.images.push(repository, tag=tag, stream=True, decode=True):
        assert 'error' not in line, line
    if before is not None:
        client.images.get(before).tag(repository, tag)
    else:
        client.images.remove(reference)
    return reference


def on_node(client, reference):
    try:
        client.images.get(reference)
        return True
    except docker.errors.ImageNotFound:
        return False


def printed_version(agency, session, image):
    [batch] = batches_of(agency, session, submit(agency, session, command_red([PRINT_VERSION], image=image)), 1)
    assert batch['state'] == 'succeeded', batch['history'][-1]
    return session.get('{}/batches/{}/stdout'.format(agency.url, batch['_id']), timeout=10).text.strip()


@pytest.mark.parametrize('policy, second_run', [('always', 'version:v2'), ('if-not-present', 'version:v1')])
def test_a_repushed_latest_runs_as_the_pull_policy_says(make_agency, engine, client, registry, versions, policy,
                                                        second_run):
    name = 'app/{}:latest'.format(policy)
    v1, v2 = versions('v1'), versions('v2')
    agency = make_agency({'node1': {'base_url': engine.base_url, 'network': 'none'}},
                         extra={'controller.docker.image_pull_policy': policy})
    alice = user_session(agency)
    image = push_as(client, registry, v1, name)
    assert not on_node(client, image)
    assert printed_version(agency, alice, image) == 'version:v1'  # pulled
    push_as(client, registry, v2, name)  # the registry has v2 now; the node still has v1 under that name
    assert client.images.get(image).id == v1
    assert printed_version(agency, alice, image) == second_run
    assert client.images.get(image).id == (v2 if policy == 'always' else v1)


def test_batches_that_wait_together_share_one_pull_with_always(make_agency, engine, client, registry, versions):
    agency = make_agency({'node1': {'base_url': engine.base_url, 'network': 'none'}},
                         extra={'controller.docker.image_pull_policy': 'always'})
    alice = user_session(agency)
    image = push_as(client, registry, versions('shared'), 'app/shared:latest')
    assert printed_version(agency, alice, image) == 'version:shared'
    pulls = 'node node1: the registry allows image {} for an experiment'.format(image)
    assert agency.log('controller').count(pulls) == 0  # the first pull is logged as a pull
    count = 6
    experiment = submit(agency, alice, command_red([PRINT_VERSION] * count, image=image))
    assert all(b['state'] == 'succeeded' for b in batches_of(agency, alice, experiment, count))
    # the batches of one pass ask for the image at about the same time: those that waited used the running pull
    assert 1 <= agency.log('controller').count(pulls) < count


def wait_for(condition, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_images_unused_for_the_prune_duration_leave_the_node_but_not_one_in_use(make_agency, engine, client,
                                                                               registry, versions):
    duration_s = 4
    agency = make_agency({'node1': {'base_url': engine.base_url, 'network': 'none'}}, extra={
        'controller.docker.image_prune_duration': duration_s,
        'controller.docker.image_prune_interval_seconds': 0.3})
    alice = user_session(agency)
    used_once = push_as(client, registry, versions('prune-a'), 'app/prune-a:1')
    long_used = push_as(client, registry, versions('prune-b'), 'app/prune-b:1')
    outside_used = push_as(client, registry, versions('prune-c'), 'app/prune-c:1')

    # used once; the controller stops before the duration is over: the new one knows of the use from MongoDB
    assert printed_version(agency, alice, used_once) == 'version:prune-a'
    agency.stop_controller()
    with agency.database() as db:
        assert [(r['node'], r['image']) for r in db['node_images'].find()] == [('node1', used_once)]
    time.sleep(duration_s)
    assert on_node(client, used_once)
    agency.start_controller()
    wait_for(lambda: not on_node(client, used_once), 20, 'an image unused for the prune duration stays')

    # a batch that runs longer than the duration keeps its image; so is a local image (no registry) kept, and an
    # image a batch used once that a container of someone else (not the agency's) runs now
    running = submit(agency, alice, command_red(["import time; time.sleep({})".format(3 * duration_s)],
                                                image=long_used))
    [local] = batches_of(agency, alice, submit(agency, alice, command_red(["print('local')"])), 1)
    assert local['state'] == 'succeeded', local['history'][-1]
    assert printed_version(agency, alice, outside_used) == 'version:prune-c'
    outside = client.containers.run(outside_used, ['sleep', '60'], detach=True, network_mode='none')
    try:
        time.sleep(duration_s + 1)
        [batch] = alice.get(agency.url + '/batches', params={'experimentId': running}, timeout=10).json()
        assert batch['state'] == 'processing', batch
        assert on_node(client, long_used) and on_node(client, reds.TEST_IMAGE)
        [done] = batches_of(agency, alice, running, 1)
        assert done['state'] == 'succeeded', done['history'][-1]
        wait_for(lambda: not on_node(client, long_used), duration_s + 10, 'the image of a batch that ended stays')
        assert on_node(client, reds.TEST_IMAGE) and on_node(client, outside_used)
    finally:
        outside.remove(force=True)
    wait_for(lambda: not on_node(client, outside_used), duration_s + 10, 'an image unused once more stays')
    # the line follows the removal (which the engine shows first)
    removed = 'node node1: removed image {}, which no batch used for the prune duration'.format(long_used)
    wait_for(lambda: removed in agency.log('controller'), 5, 'the removal is not logged')
    kept = 'image pruner: node node1: image {} came from no registry and is kept'.format(reds.TEST_IMAGE)
    assert kept in agency.log('controller')
