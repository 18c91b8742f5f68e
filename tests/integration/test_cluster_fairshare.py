"""Fair share on a real agency: a user who submits a few batches behind another's long queue is served as soon as
slots free, not after that queue (controller.scheduling.policy fair); fifo, for contrast, serves in registration
order."""
import time

import pytest

from tests.integration.cluster import (batches_of, command_red, engine_ram_mib, history_time, nodes_of, submit,
                                       user_session, wait_nodes_online)

SLEEP = 'import time; time.sleep({})'


@pytest.mark.parametrize('policy', ['fair', 'fifo'])
def test_a_few_batches_start_before_most_of_a_long_queue_of_another_user(make_agency, engine, policy):
    ram = engine_ram_mib(engine) // 4 - 64  # four batches fill the node
    agency = make_agency(nodes_of([engine]), extra={'controller.scheduling.policy': policy})
    alice, bob = user_session(agency, 'alice'), user_session(agency, 'bob')
    wait_nodes_online(agency, alice, [engine.name])
    alice_id = submit(agency, alice, command_red([SLEEP.format(1)] * 30, ram=ram))
    deadline = time.time() + 30
    while not alice.get(agency.url + '/batches', params={'state': 'processing'}, timeout=10).json():
        assert time.time() < deadline, 'alice\'s batches did not start'
        time.sleep(0.1)
    bob_id = submit(agency, bob, command_red([SLEEP.format(1)] * 3, ram=ram))
    alice_batches = batches_of(agency, alice, alice_id, 30, timeout=180)
    bob_batches = batches_of(agency, bob, bob_id, 3, timeout=180)
    assert {b['state'] for b in alice_batches + bob_batches} == {'succeeded'}
    # the policy decides the order of placement (`scheduled`); containers of one pass then start side by side
    alice_starts = sorted(history_time(b, 'scheduled') for b in alice_batches)
    alice_before_bob = [sum(start < history_time(b, 'scheduled') for start in alice_starts) for b in bob_batches]
    if policy == 'fair':
        # bob's share is the smaller one whenever slots free: his three start in the next waves (4 slots each),
        # while most of alice's queue still waits
        assert max(alice_before_bob) <= 12, alice_before_bob
    else:
        assert min(alice_before_bob) == 30, alice_before_bob


def _cpu_shares_of_processing(agency, session, experiment_id, engine, count):
    """The CPU weight of the containers of an experiment's `count` batches, once all are processing."""
    deadline = time.time() + 60
    while True:
        batches = session.get(agency.url + '/batches', params={'experimentId': experiment_id}, timeout=10).json()
        if len(batches) == count and all(b['state'] == 'processing' for b in batches):
            break
        assert time.time() < deadline, batches
        time.sleep(0.1)
    client = engine.client()
    try:
        return sorted(client.api.inspect_container(c['Id'])['HostConfig']['CpuShares'] for c in client.api.containers(
            filters={'label': 'cc-agency.experiment={}'.format(experiment_id)}))
    finally:
        client.close()


def test_on_a_node_a_users_batches_share_one_cpu_weight(make_agency, engine):
    """alice runs three batches on the node, bob one: alice's later container weighs 1024 x CPUs / (3 x the CPUs
    her three can use), bob's 1024 x CPUs, so that under contention bob's batch gets a CPU of its own and alice's
    the rest."""
    ram = engine_ram_mib(engine) // 5 - 64
    cpus = engine.info()['NCPU']
    agency = make_agency(nodes_of([engine]))
    alice, bob = user_session(agency, 'alice'), user_session(agency, 'bob')
    wait_nodes_online(agency, alice, [engine.name])
    first = submit(agency, alice, command_red([SLEEP.format(60)] * 2, ram=ram))
    _cpu_shares_of_processing(agency, alice, first, engine, 2)
    third = submit(agency, alice, command_red([SLEEP.format(60)], ram=ram))
    assert _cpu_shares_of_processing(agency, alice, third, engine, 1) == [1024 * cpus // (3 * min(3, cpus))]
    lone = submit(agency, bob, command_red([SLEEP.format(60)], ram=ram))
    assert _cpu_shares_of_processing(agency, bob, lone, engine, 1) == [min(262144, 1024 * cpus)]
    for session, experiment_id in ((alice, first), (alice, third), (bob, lone)):
        assert session.delete(agency.url + '/experiments/' + experiment_id, timeout=10).status_code == 200
