"""Fair share core: dominant shares, and properties of a pass over per-user queues with the real placer."""
from hypothesis import assume, given, settings, strategies as st

from cc_agency.config import CONFIG_SCHEMA
from cc_agency.controller.fairshare import POLICIES, DominantShares, cpu_shares, fair_pass
from cc_agency.controller.state import RunRegistry
from cc_agency.controller.placement import BINPACK, SPREAD, BatchRequest, Gpu, NodeCapacity, Placement, Placer, fits_now


def placing_with(placer):
    """fair_pass's callback over a Placer, as the scheduler's: what a placed request holds."""
    def place(request):
        decision = placer.place(request)
        if isinstance(decision, Placement):
            return request.ram_mib, len(decision.gpu_ids)
        return None
    return place


def queue(user, count, ram_mib, gpu_vram_mib=()):
    return [BatchRequest('{}-{}'.format(user, i), user, ram_mib, tuple(gpu_vram_mib)) for i in range(count)]


def test_the_policies_are_the_configs():
    policy = CONFIG_SCHEMA['properties']['controller']['properties']['scheduling']['properties']['policy']
    assert tuple(policy['enum']) == POLICIES


def test_dominant_share_is_the_larger_fraction_divided_by_the_weight():
    shares = DominantShares(total_ram_mib=1000, total_gpus=4, weights={'bob': 2})
    shares.charge('alice', 500, 1)  # half the RAM, a quarter of the GPUs
    shares.charge('bob', 100, 2)  # a tenth of the RAM, half the GPUs, weight 2
    assert shares.dominant_share('alice') == 0.5 and shares.share('alice') == 0.5
    assert shares.dominant_share('bob') == 0.5 and shares.share('bob') == 0.25
    assert shares.share('carol') == 0
    assert DominantShares(1000, 0).dominant_share('nobody') == 0  # a cluster without GPUs counts RAM only


def test_a_newcomer_gets_freed_room_before_the_user_who_holds_the_cluster():
    node = NodeCapacity('n', 4096, used_ram_mib=3 * 1024)  # alice's three batches run, one slot is free
    shares = DominantShares(4096, 0)
    shares.charge('alice', 3 * 1024, 0)
    placer = Placer([node], SPREAD)
    placed = fair_pass({'alice': queue('alice', 30, 1024), 'bob': queue('bob', 3, 1024)}, shares, placing_with(placer))
    assert [user for user, _ in placed] == ['bob']


def test_fifo_within_a_user_and_a_batch_too_large_now_does_not_block_the_next():
    placer = Placer([NodeCapacity('n', 2048)], SPREAD)
    requests = [BatchRequest('big', 'e', 4096, ()), BatchRequest('a', 'e', 1024, ()), BatchRequest('b', 'e', 1024, ())]
    placed = fair_pass({'alice': requests}, DominantShares(2048, 0), placing_with(placer))
    assert [request.batch_id for _, request in placed] == ['a', 'b']


def test_weights_divide_the_cluster():
    placer = Placer([NodeCapacity('n', 12 * 512)], SPREAD)
    shares = DominantShares(12 * 512, 0, weights={'alice': 2})
    placed = fair_pass({'alice': queue('alice', 20, 512), 'bob': queue('bob', 20, 512)}, shares, placing_with(placer))
    assert sorted(user for user, _ in placed).count('alice') == 8 and len(placed) == 12


def test_the_pass_stops_when_there_is_no_room():
    placer = Placer([NodeCapacity('n', 1024)], SPREAD)
    consumed = []

    def endless(user):
        index = 0
        while True:
            index += 1
            consumed.append(user)
            yield BatchRequest('{}-{}'.format(user, index), user, 512, ())

    placed = fair_pass({'alice': endless('alice'), 'bob': endless('bob')}, DominantShares(1024, 0),
                       placing_with(placer), has_room=lambda: placer.max_free_ram_mib() >= 256)
    assert [user for user, _ in placed] == ['alice', 'bob'] and len(consumed) == 2


# --- properties over random clusters and users ------------------------------------------------------------------

node_specs = st.lists(st.tuples(st.integers(1024, 16384), st.lists(st.integers(1024, 16384), max_size=4)),
                      min_size=1, max_size=6)
weights = st.integers(1, 4)


def cluster(specs):
    return [NodeCapacity('n{}'.format(index), ram, gpus=[Gpu(g, vram) for g, vram in enumerate(vrams)])
            for index, (ram, vrams) in enumerate(specs)]


def totals(nodes):
    return sum(node.ram_mib for node in nodes), sum(len(node.gpus) for node in nodes)


def enough_for_the_whole_cluster(nodes, ram_mib):
    return sum(node.ram_mib for node in nodes) // ram_mib + 1


def assert_never_over_committed(nodes):
    for node in nodes:
        assert 0 <= node.used_ram_mib <= node.ram_mib
        assert node.used_gpu_ids <= {gpu.id for gpu in node.gpus}


@settings(max_examples=200, deadline=None)
@given(node_specs, st.dictionaries(st.sampled_from(['alice', 'bob', 'carol', 'dave']), weights, min_size=2),
       st.integers(256, 4096), st.integers(0, 2), st.sampled_from([SPREAD, BINPACK]))
def test_while_all_have_work_shares_follow_the_weights(specs, user_weights, ram_mib, gpu_count, strategy):
    """DRF's guarantee: a user gets a batch only while their weighted share is the smallest, so at the end no
    weighted share exceeds another by more than one batch's weighted share (all users queue the same shape)."""
    nodes = cluster(specs)
    placer = Placer(nodes, strategy)
    shares = DominantShares(*totals(nodes), weights=user_weights)
    count = enough_for_the_whole_cluster(nodes, ram_mib)
    queues = {user: queue(user, count, ram_mib, [512] * gpu_count) for user in user_weights}
    share_before_last = {}
    place = placing_with(placer)

    def recording(request):
        before = shares.share(request.experiment_id)
        held = place(request)
        if held is not None:
            share_before_last[request.experiment_id] = before
        return held

    fair_pass(queues, shares, recording)
    assert_never_over_committed(nodes)
    for user, before in share_before_last.items():
        for other in user_weights:
            assert before <= shares.share(other) + 1e-9, (user, other)
    # the cluster is as full as one user's FIFO would leave it: no further batch of the shape fits anywhere
    probe = BatchRequest('probe', 'x', ram_mib, tuple([512] * gpu_count))
    assert all(fits_now(node, probe) is None for node in nodes)


@settings(max_examples=200, deadline=None)
@given(node_specs, st.lists(st.tuples(st.integers(256, 8192), st.integers(0, 3)), min_size=1, max_size=20),
       st.sampled_from([SPREAD, BINPACK]))
def test_a_lone_user_gets_the_whole_cluster(specs, shapes, strategy):
    """Alone, a user is placed exactly as the FIFO placer would place their queue: nothing is held back."""
    requests = [BatchRequest(index, 'e', ram, tuple([256] * gpus)) for index, (ram, gpus) in enumerate(shapes)]
    fifo_nodes, fair_nodes = cluster(specs), cluster(specs)
    fifo_placer = Placer(fifo_nodes, strategy)
    fifo = [request.batch_id for request in requests if isinstance(fifo_placer.place(request), Placement)]
    placed = fair_pass({'alice': requests}, DominantShares(*totals(fair_nodes)), placing_with(Placer(fair_nodes,
                                                                                                      strategy)))
    assert [request.batch_id for _, request in placed] == fifo
    assert_never_over_committed(fair_nodes)


@settings(max_examples=200, deadline=None)
@given(node_specs, st.lists(st.tuples(st.integers(256, 4096), st.integers(0, 2), weights), min_size=2, max_size=4),
       st.sampled_from([SPREAD, BINPACK]))
def test_no_user_waits_for_another_users_second_batch(specs, users, strategy):
    """Whatever the shapes and weights, on an empty cluster every user who gets anything in a pass gets their first
    batch before anyone gets a second: a user with nothing has the smallest share, and room only shrinks in a
    pass, so a user passed over then could not have been placed later either."""
    nodes = cluster(specs)
    placer = Placer(nodes, strategy)
    shares = DominantShares(*totals(nodes), weights={'u{}'.format(i): w for i, (_, _, w) in enumerate(users)})
    queues = {'u{}'.format(i): queue('u{}'.format(i), enough_for_the_whole_cluster(nodes, ram), ram, [256] * gpus)
              for i, (ram, gpus, _) in enumerate(users)}
    order = [user for user, _ in fair_pass(queues, shares, placing_with(placer))]
    assert_never_over_committed(nodes)
    served = len(set(order))
    assert len(set(order[:served])) == served, order
    # and whoever was left out could not be placed at all
    for user, requests in queues.items():
        if user not in order:
            assert all(fits_now(node, requests[0]) is None for node in nodes)


@given(st.integers(min_value=1, max_value=5000), st.integers(min_value=1, max_value=256))
def test_a_users_cpu_weight_on_a_node_is_divided_among_its_batches(batches, cpus):
    weight = cpu_shares(batches, cpus)
    assert 2 <= weight <= 262144
    assert cpu_shares(batches + 1, cpus) <= weight  # one more batch never weighs more
    if batches >= cpus:  # a batch on every CPU: 1024 together, as Docker weighs one container
        assert weight * batches <= 1024 or weight == 2
        assert weight == max(2, 1024 // batches)
    else:
        assert weight * batches > 1024  # fewer batches than CPUs: more
    assert cpu_shares(batches) == max(2, 1024 // batches)  # the node's CPUs unknown: 1024 together


@given(st.integers(min_value=1, max_value=600), st.integers(min_value=1, max_value=600),
       st.integers(min_value=1, max_value=128))
def test_users_who_fill_every_cpu_weigh_the_same_and_one_who_cannot_weighs_more(mine, theirs, cpus):
    """Each user's total: equal (up to rounding down) when both have at least a batch per CPU, larger for a user
    with fewer batches than CPUs beside one with more (where weights are not at Docker's least, which ends the
    division)."""
    def total(batches):
        return cpu_shares(batches, cpus) * batches
    assume(cpu_shares(max(mine, theirs), cpus) > 2)
    if min(mine, theirs) >= cpus:
        assert abs(total(mine) - total(theirs)) < max(mine, theirs)
    if mine < cpus and mine < theirs:
        assert total(mine) > total(theirs)


def test_beside_a_sweep_on_two_cpus_a_lone_batch_outweighs_the_sweeps_batches_together():
    """The measured case: ten batches of one user and one of another on two CPUs."""
    assert cpu_shares(10, 2) == 102  # as before: 1024 / 10
    assert cpu_shares(1, 2) == 2048
    assert cpu_shares(10, 2) * 10 < cpu_shares(1, 2)
    assert cpu_shares(1, 64) == 65536 and cpu_shares(1, 1024) == 262144  # Docker's most


def test_the_runs_of_a_user_on_a_node_are_counted_once_the_run_knows_its_owner():
    runs = RunRegistry()
    runs.started('b1', 1, 'n1')
    runs.started('b2', 1, 'n1')
    runs.started('b3', 1, 'n2')
    assert runs.runs_of('alice', 'n1') == 0
    for batch_id in ('b1', 'b2', 'b3'):
        runs.owned_by(batch_id, 1, 'alice')
    runs.owned_by('b2', 2, 'bob')  # a stale attempt's word changes nothing
    runs.started('b1', 1, 'n1', 'container-1')  # the run's own record keeps its owner
    assert (runs.runs_of('alice', 'n1'), runs.runs_of('alice', 'n2'), runs.runs_of('bob', 'n1')) == (2, 1, 0)
    runs.ended('b1', 1)
    assert runs.runs_of('alice', 'n1') == 1
