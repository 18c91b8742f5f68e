"""Placement core and scheduling pass benchmarks (issue goals: >= 5,000 placements/s with 100,000 queued batches
on 1,000 simulated nodes; DB work of a pass proportional to what it places, not to the queue length).

core   The pure placement core (cc_agency/controller/placement.py): 1,000 nodes (32/64/128 GiB, every tenth with
       4 GPUs of 8/16/40 GiB VRAM), 100,000 queued batches in experiments of 100 (256 MiB .. 8 GiB, every
       twentieth experiment with 1-2 GPUs). A fill pass from empty nodes, then steady state: 2% of the running
       batches end, a pass places from the remaining queue, twenty times. For scale, the same placements by the
       definition (every node scored for every batch) on the first 2,000 batches.
pass   One scheduling pass (cc_agency/controller/scheduler.py) against SecantusDB with queues of different
       lengths and room for 60 batches: the MongoDB round trips and documents it reads and writes (counted with
       a pymongo command listener), and a second pass once the nodes are full; then queues of 10 sweeps at
       batchConcurrencyLimit 1 (the big-queue case of issue 17) plus another user's single batch.

    python3 benchmarks/bench_placement.py [core|pass|all] [--queues 1000,10000,30000]
"""
import argparse
import copy
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pymongo  # noqa: E402
from bson import ObjectId  # noqa: E402

from cc_agency.controller.placement import (BINPACK, SPREAD, BatchRequest, Gpu, NodeCapacity, Placement,  # noqa: E402
                                            fits_now, never_fit_reason, place, score)
from cc_agency.controller.scheduler import Scheduler  # noqa: E402
from cc_agency.controller.state import NodeBoard  # noqa: E402
from cc_agency.db import ensure_indexes  # noqa: E402
from cc_agency.transitions import BatchLifecycle  # noqa: E402
from localcluster import MongoServer  # noqa: E402
from localcluster.mongo import CommandCounter  # noqa: E402


# --------------------------------------------------------------------------------------------------- core

def simulated_nodes(count=1000, seed=1):
    rng = random.Random(seed)
    nodes = []
    for index in range(count):
        gpus = [Gpu(g, rng.choice([8192, 16384, 40960])) for g in range(4)] if index % 10 == 0 else []
        nodes.append(NodeCapacity('node{:04d}'.format(index), rng.choice([32768, 65536, 131072]), gpus=gpus))
    return nodes


def simulated_queue(count=100000, first_id=0):
    requests = []
    for index in range(first_id, first_id + count):
        experiment = index // 100
        rng = random.Random(experiment)  # the batches of an experiment share their requirements
        gpus = tuple(rng.choice([0, 8000, 16000]) for _ in range(rng.randint(1, 2))) if experiment % 20 == 0 else ()
        requests.append(BatchRequest(index, 'e{}'.format(experiment), rng.choice([256, 512, 1024, 2048, 4096, 8192]),
                                     gpus))
    return requests


def place_by_definition(requests, nodes, strategy):
    """Every node filtered and scored for every batch: the rules as written, for comparison."""
    placed = []
    for request in requests:
        if never_fit_reason(nodes, request):
            continue
        best = min(((score(node, request, strategy), node, fits_now(node, request)) for node in nodes
                    if fits_now(node, request) is not None), key=lambda item: item[0], default=None)
        if best:
            best[1].hold(request, best[2])
            placed.append(Placement(request.batch_id, best[1].name, best[2]))
    return placed


def bench_core():
    queue = simulated_queue()
    print('placement core: {:,} queued batches, {:,} nodes'.format(len(queue), 1000))
    for strategy in (SPREAD, BINPACK):
        nodes = simulated_nodes()
        t0 = time.perf_counter()
        placed, unplaceable = place(queue, nodes, strategy)
        fill_s = time.perf_counter() - t0
        by_name = {node.name: node for node in nodes}
        requests = {request.batch_id: request for request in queue}
        running = {p.batch_id: p for p in placed}
        waiting = [r for r in queue if r.batch_id not in running]
        rng = random.Random(2)
        steady_placed, steady_s = 0, 0.0
        for _ in range(20):
            for batch_id in rng.sample(sorted(running), len(running) // 50):
                done = running.pop(batch_id)
                by_name[done.node].release(requests[batch_id].ram_mib, done.gpu_ids)
            t0 = time.perf_counter()
            placed_now, _ = place(waiting, nodes, strategy)
            steady_s += time.perf_counter() - t0
            steady_placed += len(placed_now)
            running.update((p.batch_id, p) for p in placed_now)
            taken = {p.batch_id for p in placed_now}
            waiting = [r for r in waiting if r.batch_id not in taken]
        print('  {:<7} fill pass: {:,} placed in {:.3f} s = {:,.0f} placements/s'.format(
            strategy, len(placed), fill_s, len(placed) / fill_s))
        print('  {:<7} steady state: {:,} placed in 20 passes over a queue of ~{:,}, {:.3f} s = {:,.0f} '
              'placements/s'.format(strategy, steady_placed, len(waiting), steady_s, steady_placed / steady_s))
    nodes = simulated_nodes()
    t0 = time.perf_counter()
    reference = place_by_definition(queue[:2000], copy.deepcopy(nodes), SPREAD)
    reference_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    indexed, _ = place(queue[:2000], nodes, SPREAD)
    indexed_s = time.perf_counter() - t0
    assert indexed == reference
    print('  first 2,000 batches, spread: by the definition {:,.0f} placements/s, indexed {:,.0f} placements/s '
          '(same decisions)'.format(len(reference) / reference_s, len(indexed) / indexed_s))


# --------------------------------------------------------------------------------------------------- pass


def recording_scheduler(db, node_status):
    """The real scheduler with the given nodes; placed attempts are recorded, not run."""
    board = NodeBoard(node_status)
    for name, status in node_status.items():
        board.set(name, status)
    launched = []
    return Scheduler(db, board, SPREAD, BatchLifecycle(db), lambda batch_id, node, *rest: launched.append(batch_id),
                     watch_checks=lambda *args: None)


def fill_queue(db, length, each=100, limit=None, running=0, username='alice', first_seq=1):
    """`length` batches in experiments of `each` (as POST /red and the registrar write them), oldest first; the
    first `running` of each experiment are processing on n0. Returns the next free seq."""
    experiments, batches = [], []
    requirements = {'ramMiB': 512, 'gpuVramMiB': []}
    for index in range(0, length, each):
        experiment_id, count = ObjectId(), min(each, length - index)
        experiments.append({'_id': experiment_id, 'username': username, 'registrationComplete': True,
                            'registrationTime': 1000 + index, 'cli': {'inputs': {}, 'outputs': {}},
                            'execution': {'settings': {'batchConcurrencyLimit': limit} if limit else {}},
                            'container': {'settings': {'image': {'url': 'x'}, 'ram': 512}},
                            'requirements': requirements, 'batchSeq': first_seq + index, 'batchCount': count,
                            'stateCounts': {'registered': count - running, 'processing': running}})
        for offset in range(count):
            batches.append({'experimentId': str(experiment_id), 'username': username,
                            'state': 'processing' if offset < running else 'registered',
                            'registrationTime': 1000 + index, 'seq': first_seq + index + offset,
                            'attempts': 0, 'node': 'n0' if offset < running else None, 'usedGPUs': None,
                            'requirements': requirements, 'history': [],
                            'inputs': {'a': {'class': 'File', 'connector': {'command': 'c', 'access': {'url': 'u'}}}},
                            'outputs': {}})
    db.experiments.insert_many(experiments)
    for start in range(0, len(batches), 5000):
        db.batches.insert_many(batches[start:start + 5000])
    return first_seq + length


def bench_pass(queue_lengths):
    counter = CommandCounter()
    with MongoServer() as mongo:
        client = pymongo.MongoClient(mongo.host, mongo.port, directConnection=True, event_listeners=[counter])
        # three nodes with room for 20 batches of 512 MiB each
        node_status = {'n{}'.format(i): {'state': 'online', 'ramMiB': 20 * 512, 'gpus': []} for i in range(3)}
        print('scheduling pass, room for 60 batches (SecantusDB; round trips = commands sent):')
        for length in queue_lengths:
            db = client['bench_pass_{}'.format(length)]
            ensure_indexes(db)
            fill_queue(db, length)
            scheduler = recording_scheduler(db, node_status)
            for label in ('first pass', 'nodes full'):
                counter.reset()
                t0 = time.perf_counter()
                scheduled = scheduler.run_pass()
                elapsed = time.perf_counter() - t0
                print('  queue {:>7,}  {:<10}  scheduled {:>3}  round trips {:>3} ({})  documents read {:>3}  '
                      '{:.2f} s'.format(length, label, scheduled, sum(counter.commands.values()),
                                        ', '.join('{} {}'.format(n, c) for n, c in sorted(counter.commands.items())),
                                        counter.documents, elapsed))
            client.drop_database(db.name)
        print('scheduling pass, sweeps at batchConcurrencyLimit 1 (one batch of each running) and another user\'s '
              'batch, room for 60:')
        for length in queue_lengths:
            db = client['bench_sweep_{}'.format(length)]
            ensure_indexes(db)
            next_seq = fill_queue(db, length, each=max(1, length // 10), limit=1, running=1)
            fill_queue(db, 1, username='bob', first_seq=next_seq)
            scheduler = recording_scheduler(db, node_status)
            counter.reset()
            t0 = time.perf_counter()
            scheduled = scheduler.run_pass()
            elapsed = time.perf_counter() - t0
            print('  queue {:>7,}  scheduled {:>3}  round trips {:>3} ({})  documents read {:>3}  {:.3f} s'.format(
                length, scheduled, sum(counter.commands.values()),
                ', '.join('{} {}'.format(n, c) for n, c in sorted(counter.commands.items())), counter.documents,
                elapsed))
            client.drop_database(db.name)
        client.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('what', nargs='?', default='all', choices=['core', 'pass', 'all'])
    parser.add_argument('--queues', default='1000,10000,30000')
    args = parser.parse_args()
    if args.what in ('core', 'all'):
        bench_core()
    if args.what in ('pass', 'all'):
        bench_pass([int(n) for n in args.queues.split(',')])


if __name__ == '__main__':
    main()
