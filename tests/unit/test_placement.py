"""Placement core: table tests of filter/score/pick and properties over random arrivals and completions."""
from hypothesis import given, settings, strategies as st

import copy

from cc_agency.controller.placement import (BINPACK, SPREAD, BatchRequest, Gpu, NodeCapacity, Placement, Placer,
                                            Unplaceable, fits_now, match_gpus, never_fit_reason, place, score)


def nodes(*spec):
    return [NodeCapacity(name, ram, used, gpus=[Gpu(i, v) for i, v in gpus]) for name, ram, used, gpus in spec]


def req(batch_id, ram=256, gpus=(), experiment='e'):
    return BatchRequest(batch_id, experiment, ram, tuple(gpus))


def test_spread_takes_most_free_ram_and_binpack_least():
    cluster = lambda: nodes(('a', 4096, 0, ()), ('b', 4096, 1024, ()), ('c', 4096, 512, ()))
    assert place([req(1)], cluster(), SPREAD)[0][0].node == 'a'
    assert place([req(1)], cluster(), BINPACK)[0][0].node == 'b'


def test_ties_are_broken_by_node_name():
    cluster = nodes(('b', 1024, 0, ()), ('a', 1024, 0, ()))
    assert [p.node for p in place([req(1), req(2)], cluster, SPREAD)[0]] == ['a', 'b']


def test_fifo_but_a_large_batch_does_not_block_smaller_ones():
    cluster = nodes(('a', 4096, 2048, ()), ('b', 4096, 2048, ()))
    placed, unplaceable = place([req(1, 3000), req(2, 512), req(3, 512)], cluster, SPREAD)
    assert [p.batch_id for p in placed] == [2, 3] and unplaceable == []


def test_batch_no_node_can_ever_hold_is_unplaceable_with_reason():
    placed, unplaceable = place([req(1, 10000), req(2, 256, [4096])], nodes(('a', 2048, 0, [(0, 1024)])), SPREAD)
    assert placed == []
    assert [u.batch_id for u in unplaceable] == [1, 2]
    assert 'largest node has 2048 MiB' in unplaceable[0].reason
    assert 'VRAM' in unplaceable[1].reason


def test_gpu_matching_uses_smallest_fitting_devices():
    gpus = [Gpu(0, 8000), Gpu(1, 2000), Gpu(2, 4000)]
    assert match_gpus(gpus, [1000]) == (1,)
    assert set(match_gpus(gpus, [3000, 1000])) == {2, 1}
    assert match_gpus(gpus, [9000]) is None
    assert match_gpus(gpus, [0, 0, 0, 0]) is None


def test_gpu_node_is_a_fallback_for_batches_without_gpus():
    cluster = nodes(('gpu', 8192, 0, [(0, 1024)]), ('cpu', 2048, 0, ()))
    placed, _ = place([req(1), req(2, 256, [512])], cluster, SPREAD)
    assert [(p.node, p.gpu_ids) for p in placed] == [('cpu', ()), ('gpu', (0,))]


def test_gpu_ids_are_never_shared():
    cluster = nodes(('g', 8192, 0, [(0, 1024), (1, 1024)]))
    placed, _ = place([req(i, 256, [512]) for i in range(3)], cluster, SPREAD)
    assert [p.gpu_ids for p in placed] == [(0,), (1,)]


def test_concurrency_limit():
    limits = {'e': [2, 1]}
    placed, _ = place([req(i) for i in range(4)] + [req(9, experiment='other')], nodes(('a', 8192, 0, ())),
                      SPREAD, limits)
    assert [p.batch_id for p in placed] == [0, 9]
    assert limits['e'] == [2, 2]


def test_binpack_also_keeps_gpu_nodes_as_a_fallback():
    cluster = nodes(('gpu', 8192, 7000, [(0, 1024)]), ('cpu', 4096, 0, ()))
    placed, _ = place([req(1, 512), req(2, 1024, [512])], cluster, BINPACK)
    assert [(p.node, p.gpu_ids) for p in placed] == [('cpu', ()), ('gpu', (0,))]


def test_a_batch_without_gpus_takes_a_gpu_node_when_no_other_node_has_room():
    cluster = nodes(('gpu', 8192, 0, [(0, 1024)]), ('cpu', 2048, 1900, ()))
    assert [p.node for p in place([req(1, 512)], cluster, SPREAD)[0]] == ['gpu']


def test_placer_streams_requests_and_reports_the_room_left():
    cluster = nodes(('a', 2048, 0, [(0, 1024), (1, 1024)]), ('b', 1024, 0, ()))
    placer = Placer(cluster, SPREAD, {'limited': [1, 0]})
    assert placer.max_free_ram_mib() == 2048 and placer.max_free_gpu_count() == 2
    assert placer.place(req(1, 1024, [512])) == Placement(1, 'a', (0,))
    assert placer.max_free_ram_mib() == 1024 and placer.max_free_gpu_count() == 1
    assert placer.place(req(2, 512, experiment='limited')) == Placement(2, 'b', ())
    assert placer.place(req(3, 256, experiment='limited')) is None  # its experiment is at its limit
    assert placer.place(req(4, 4096)) == Unplaceable(4, 'needs 4096 MiB RAM, but the largest node has 2048 MiB')
    assert placer.place(req(5, 1024, [512, 512])) is None  # only one GPU left
    assert placer.place(req(6, 1024, [512])) == Placement(6, 'a', (1,))
    assert placer.max_free_ram_mib() == 512 and placer.max_free_gpu_count() == 0


def test_offline_nodes_take_nothing():
    cluster = nodes(('a', 8192, 0, ()))
    cluster[0].online = False
    assert place([req(1)], cluster, SPREAD) == ([], [])


node_specs = st.lists(st.tuples(st.integers(256, 8192), st.lists(st.integers(0, 4096), max_size=3)),
                      min_size=1, max_size=5)
events = st.lists(st.one_of(
    st.tuples(st.just('arrive'), st.integers(256, 4096), st.lists(st.integers(0, 4096), max_size=2)),
    st.tuples(st.just('complete'), st.integers(0, 1000), st.just([]))), max_size=40)


@settings(max_examples=200, deadline=None)
@given(node_specs, events, st.sampled_from([SPREAD, BINPACK]))
def test_no_overcommit_over_any_sequence_of_arrivals_and_completions(specs, sequence, strategy):
    cluster = [NodeCapacity('n{}'.format(i), ram, gpus=[Gpu(g, v) for g, v in enumerate(vrams)])
               for i, (ram, vrams) in enumerate(specs)]
    queue, running, next_id = [], {}, 0
    for kind, value, gpus in sequence:
        if kind == 'arrive':
            queue.append(req(next_id, value, gpus))
            next_id += 1
        elif running:
            batch_id = sorted(running)[value % len(running)]
            node, request, gpu_ids = running.pop(batch_id)
            node.release(request.ram_mib, gpu_ids)
        placed, unplaceable = place(queue, cluster, strategy)
        by_name = {node.name: node for node in cluster}
        requests = {r.batch_id: r for r in queue}
        for p in placed:
            running[p.batch_id] = (by_name[p.node], requests[p.batch_id], p.gpu_ids)
        done = {p.batch_id for p in placed} | {u.batch_id for u in unplaceable}
        queue = [r for r in queue if r.batch_id not in done]
        for node in cluster:
            mine = [(r, g) for n, r, g in running.values() if n is node]
            assert sum(r.ram_mib for r, _ in mine) == node.used_ram_mib <= node.ram_mib
            ids = [i for _, g in mine for i in g]
            assert len(ids) == len(set(ids)) and set(ids) == node.used_gpu_ids
            vram = {gpu.id: gpu.vram_mib for gpu in node.gpus}
            for r, g in mine:
                given = sorted((vram[i] for i in g), reverse=True)
                needed = sorted(r.gpu_vram_mib, reverse=True)
                assert len(given) == len(needed) and all(v >= n for v, n in zip(given, needed))
        # every queued batch that fits on some node right now was placed (nothing feasible is left waiting)
        for r in queue:
            assert all(node.free_ram_mib < r.ram_mib or match_gpus(node.free_gpus(), r.gpu_vram_mib) is None
                       for node in cluster)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(512, 8192), min_size=2, max_size=6), st.integers(256, 1024),
       st.sampled_from([SPREAD, BINPACK]))
def test_strategy_order(rams, size, strategy):
    cluster = [NodeCapacity('n{}'.format(i), 8192, 8192 - free) for i, free in enumerate(rams)]
    frees = {node.name: node.free_ram_mib for node in cluster}
    placed, _ = place([req(1, size)], cluster, strategy)
    feasible = {name: free for name, free in frees.items() if free >= size}
    if not feasible:
        assert placed == []
        return
    best = max(feasible.values()) if strategy == SPREAD else min(feasible.values())
    assert frees[placed[0].node] == best
    assert placed[0].node == min(name for name, free in feasible.items() if free == best)


def place_by_definition(requests, cluster, strategy, concurrency):
    """The placement rules written as plainly as possible (every node scored for every batch): the oracle."""
    placements, unplaceable = [], []
    for request in requests:
        reason = never_fit_reason(cluster, request)
        if reason:
            unplaceable.append(Unplaceable(request.batch_id, reason))
            continue
        limit = concurrency.get(request.experiment_id)
        if limit is not None and limit[1] >= limit[0]:
            continue
        feasible = [(score(node, request, strategy), node, fits_now(node, request)) for node in cluster]
        feasible = [(key, node, gpu_ids) for key, node, gpu_ids in feasible if gpu_ids is not None]
        if feasible:
            _, node, gpu_ids = min(feasible, key=lambda item: item[0])
            node.hold(request, gpu_ids)
            if limit is not None:
                limit[1] += 1
            placements.append(Placement(request.batch_id, node.name, gpu_ids))
    return placements, unplaceable


cluster_specs = st.lists(st.tuples(st.integers(0, 8192), st.integers(0, 4096),
                                   st.lists(st.sampled_from([0, 1024, 2048, 4096]), max_size=3), st.booleans()),
                         min_size=0, max_size=6)
request_specs = st.lists(st.tuples(st.sampled_from([256, 512, 1024, 3000, 4096, 9000]),
                                   st.lists(st.sampled_from([0, 1024, 3000, 5000]), max_size=3),
                                   st.sampled_from(['e1', 'e2', 'e3'])), max_size=40)


@settings(max_examples=300, deadline=None)
@given(cluster_specs, request_specs, st.sampled_from([SPREAD, BINPACK]), st.integers(1, 4))
def test_indexed_placement_decides_exactly_as_the_definition(specs, request_list, strategy, limit):
    cluster = [NodeCapacity('n{}'.format(i), ram, min(used, ram), gpus=[Gpu(g, v) for g, v in enumerate(vrams)],
                            online=online)
               for i, (ram, used, vrams, online) in enumerate(specs)]
    requests = [BatchRequest(i, experiment, ram, tuple(gpus)) for i, (ram, gpus, experiment) in enumerate(request_list)]
    expected_cluster = copy.deepcopy(cluster)
    expected = place_by_definition(requests, expected_cluster, strategy, {'e2': [limit, 0]})
    got = place(requests, cluster, strategy, {'e2': [limit, 0]})
    assert got[0] == expected[0]
    assert sorted(got[1]) == sorted(expected[1])
    assert [(n.used_ram_mib, n.used_gpu_ids) for n in cluster] == \
        [(n.used_ram_mib, n.used_gpu_ids) for n in expected_cluster]
