"""Placement on three real engines: spread lands evenly, binpack fills one node first, RAM is never over-committed
(as the engines themselves see it), and the concurrency limit holds."""
from collections import Counter

from tests.integration.cluster import (EngineSampler, batches_of, command_red, engine_ram_mib, history_time,
                                       max_overlap, nodes_of, submit, user_session, wait_nodes_online)

SLEEP = 'import time; time.sleep({})'


def test_spread_lands_evenly_and_binpack_fills_one_node_first(make_agency, engines3):
    ram = 2048
    per_node = min(engine_ram_mib(engine) // ram for engine in engines3)
    assert 30 > per_node > 10, 'the test needs nodes that hold 11..29 batches of {} MiB'.format(ram)
    for strategy in ('spread', 'binpack'):
        agency = make_agency(nodes_of(engines3), strategy=strategy)
        alice = user_session(agency)
        wait_nodes_online(agency, alice, [engine.name for engine in engines3])
        with EngineSampler(engines3) as sampler:
            experiment_id = submit(agency, alice, command_red([SLEEP.format(1)] * 30, ram=ram))
            batches = batches_of(agency, alice, experiment_id, 30)
        agency.stop()
        assert [b['state'] for b in batches] == ['succeeded'] * 30
        landed = Counter(b['node'] for b in batches)
        if strategy == 'spread':
            assert sorted(landed.values()) == [10, 10, 10], landed
        else:
            assert landed == {'node1': per_node, 'node2': per_node, 'node3': 30 - 2 * per_node}, landed
        for engine in engines3:
            assert sampler.max_ram_mib[engine.name] <= engine_ram_mib(engine)
        assert sum(sampler.max_running.values()) > 3, 'the batches should have run side by side'


def test_ram_of_a_node_is_never_exceeded_under_contention(make_agency, engines3):
    node_ram = min(engine_ram_mib(engine) for engine in engines3)
    ram = node_ram // 2 - 64  # two batches fit on a node, a third does not
    agency = make_agency(nodes_of(engines3))
    alice = user_session(agency)
    wait_nodes_online(agency, alice, [engine.name for engine in engines3])
    with EngineSampler(engines3) as sampler:
        experiment_id = submit(agency, alice, command_red([SLEEP.format(1.5)] * 12, ram=ram))
        batches = batches_of(agency, alice, experiment_id, 12)
    assert [b['state'] for b in batches] == ['succeeded'] * 12
    for engine in engines3:
        assert sampler.max_ram_mib[engine.name] <= engine_ram_mib(engine), sampler.max_ram_mib
        assert sampler.max_running[engine.name] <= 2
    assert max(sampler.max_running.values()) == 2, 'the nodes should have been full at some time'
    # the agency's own record agrees: never more than two batches of a node between scheduled and ended
    for node in ('node1', 'node2', 'node3'):
        held = [(history_time(b, 'scheduled'), b['history'][-1]['time']) for b in batches if b['node'] == node]
        assert max_overlap(held) <= 2


def test_batch_concurrency_limit(make_agency, engines3):
    agency = make_agency(nodes_of(engines3))
    alice = user_session(agency)
    red = command_red([SLEEP.format(0.7)] * 6, execution_settings={'batchConcurrencyLimit': 2})
    other = command_red([SLEEP.format(0.1)] * 3)
    experiment_id = submit(agency, alice, red)
    other_id = submit(agency, alice, other)
    batches = batches_of(agency, alice, experiment_id, 6)
    assert [b['state'] for b in batches] == ['succeeded'] * 6
    held = [(history_time(b, 'scheduled'), b['history'][-1]['time']) for b in batches]
    assert max_overlap(held) == 2
    # another experiment is not held back by this one's limit
    others = batches_of(agency, alice, other_id, 3)
    assert [b['state'] for b in others] == ['succeeded'] * 3
    assert max(b['history'][-1]['time'] for b in others) < max(end for _, end in held)


def test_a_batch_larger_than_every_node_fails_at_once_and_does_not_block_others(make_agency, engines3):
    agency = make_agency(nodes_of(engines3))
    alice = user_session(agency)
    too_large = engine_ram_mib(engines3[0]) + 1024
    big_id = submit(agency, alice, command_red(['pass'], ram=too_large))
    small_id = submit(agency, alice, command_red(['pass'] * 2))
    [big] = batches_of(agency, alice, big_id, 1)
    assert big['state'] == 'failed' and big['attempts'] == 0
    assert 'needs {} MiB RAM, but the largest node has'.format(too_large) in big['history'][-1]['debugInfo'][0]
    assert [b['state'] for b in batches_of(agency, alice, small_id, 2)] == ['succeeded'] * 2
