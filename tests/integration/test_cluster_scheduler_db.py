"""A scheduling pass against the real database: its round trips and reads follow what it places, not the queue."""
from collections import Counter

import pymongo
import pytest
from bson import ObjectId

from cc_agency import registration
from cc_agency.controller.scheduler import NEVER_FIT_SWEEP_S, Scheduler
from cc_agency.controller.state import NodeBoard
from cc_agency.cordon import set_schedulable
from cc_agency.db import allocate_seq, ensure_indexes
from cc_agency.transitions import AttemptFailed, BatchLifecycle
from localcluster.mongo import CommandCounter


class RecordingScheduler(Scheduler):
    """The real scheduler on the real database, with nodes as given and attempts recorded instead of run."""

    def __init__(self, db, node_status, policy='fair', user_weights=None, default_concurrency_limit=None):
        board = NodeBoard(node_status)
        for name, status in node_status.items():
            board.set(name, status)
        self.launched = []
        self.watched = []
        super().__init__(db, board, 'spread', BatchLifecycle(db), self._record,
                         watch_checks=lambda batch_id, attempt, node: self.watched.append(batch_id),
                         policy=policy, user_weights=user_weights,
                         default_concurrency_limit=default_concurrency_limit)

    def _record(self, batch_id, node, attempt, gpu_ids=()):
        self.launched.append((batch_id, node, tuple(gpu_ids)))


@pytest.fixture
def counted_db(mongo_server, mongo_db):
    commands = CommandCounter()
    client = pymongo.MongoClient(mongo_server.host, mongo_server.port, directConnection=True,
                                 event_listeners=[commands])
    db = client[mongo_db.name]
    ensure_indexes(db)
    yield db, commands
    client.close()


def add_experiment(db, count, time, ram=512, gpus=(), limit=None, username='alice', cli=None):
    """An experiment of `count` queued batches of `username`, registered after those added before it (as POST /red
    does)."""
    experiment_id, first = ObjectId(), allocate_seq(db, 'batches', count)
    db.experiments.insert_one({'_id': experiment_id, 'username': username, 'registrationComplete': True,
                               'registrationTime': time, 'cli': cli or {'inputs': {}, 'outputs': {}},
                               'execution': {'settings': {'batchConcurrencyLimit': limit} if limit else {}},
                               'container': {'settings': {'image': {'url': 'img'}, 'ram': ram}},
                               'requirements': {'ramMiB': ram, 'gpuVramMiB': list(gpus)},
                               'batchSeq': first, 'batchCount': count, 'stateCounts': {'registered': count}})
    db.batches.insert_many([{'experimentId': str(experiment_id), 'username': username, 'state': 'registered',
                             'registrationTime': time, 'seq': first + i, 'attempts': 0, 'node': None, 'usedGPUs': None,
                             'history': [], 'inputs': {}, 'outputs': {},
                             'requirements': {'ramMiB': ram, 'gpuVramMiB': list(gpus)}}
                            for i in range(count)])
    return str(experiment_id)


def nodes(count, ram_mib, gpus=()):
    return {'n{}'.format(i): {'state': 'online', 'ramMiB': ram_mib, 'gpus': list(gpus)} for i in range(count)}


@pytest.mark.parametrize('policy', ['fifo', 'fair'])
def test_a_pass_reads_about_what_it_places_whatever_the_queue_length(counted_db, policy):
    db, commands = counted_db
    add_experiment(db, 2000, time=1)
    scheduler = RecordingScheduler(db, nodes(2, 5 * 512), policy=policy)
    commands.reset()
    assert scheduler.run_pass() == 10
    # active batches, cordoned nodes, the experiments with queued batches, one window of the queue; per placement a
    # conditional update and its counter
    assert commands.commands == {'find': 4, 'update': 20}
    assert commands.documents <= 2 * 10 * 2 + 1  # a window holds what the room could take at 256 MiB a batch
    commands.reset()
    assert scheduler.run_pass() == 0
    assert commands.commands == {'find': 1} and commands.documents == 10  # full: only the active batches are read
    assert Counter(node for _, node, _ in scheduler.launched) == {'n0': 5, 'n1': 5}


def test_an_experiment_without_a_limit_of_its_own_gets_the_default_limit(counted_db):
    """controller.scheduling.batch_concurrency_limit (64 by default, as in cc-agency 9.x) is what a RED without
    batchConcurrencyLimit gets; a RED's own limit wins."""
    db, _ = counted_db
    unlimited = add_experiment(db, 10, time=1)
    own_limit = add_experiment(db, 10, time=2, limit=5)
    scheduler = RecordingScheduler(db, nodes(1, 40 * 512), policy='fifo', default_concurrency_limit=3)
    assert scheduler.run_pass() == 8
    placed = Counter(db.batches.find_one({'_id': batch_id})['experimentId'] for batch_id, _, _ in scheduler.launched)
    assert placed == {unlimited: 3, own_limit: 5}


def test_blocked_experiments_are_left_out_of_the_next_page(counted_db):
    db, commands = counted_db
    limited = add_experiment(db, 300, time=1, limit=2)
    one_at_a_time = add_experiment(db, 300, time=2, limit=1)
    free = add_experiment(db, 5, time=3)
    scheduler = RecordingScheduler(db, nodes(1, 20 * 512), policy='fifo')
    commands.reset()
    assert scheduler.run_pass() == 8
    finds, documents = commands.commands['find'], commands.documents
    placed = Counter(db.batches.find_one({'_id': batch_id})['experimentId'] for batch_id, _, _ in scheduler.launched)
    assert placed == {limited: 2, one_at_a_time: 1, free: 5}
    # active batches, cordoned nodes, the experiments, then one window of each experiment's queue, as wide as what
    # its limit lets the pass place
    assert finds == 3 + 3
    assert documents <= 3 + 2 + 1 + 5


def test_batches_no_node_can_hold_fail_in_the_pass_that_meets_them(counted_db):
    db, commands = counted_db
    too_large = add_experiment(db, 2, time=1, ram=64 * 1024)
    too_many_gpus = add_experiment(db, 1, time=2, gpus=[0, 0, 0])
    too_much_vram = add_experiment(db, 1, time=3, gpus=[9000])
    fits = add_experiment(db, 2, time=4, gpus=[2000])
    scheduler = RecordingScheduler(db, nodes(2, 8192, gpus=[{'id': 0, 'vram': 4096}, {'id': 1, 'vram': 8192}]))
    assert scheduler.run_pass() == 2
    states = {e: Counter(b['state'] for b in db.batches.find({'experimentId': e}))
              for e in (too_large, too_many_gpus, too_much_vram, fits)}
    assert states == {too_large: {'failed': 2}, too_many_gpus: {'failed': 1}, too_much_vram: {'failed': 1},
                      fits: {'scheduled': 2}}
    assert sorted(gpu_ids for _, _, gpu_ids in scheduler.launched) == [(0,), (0,)]  # smallest fitting GPU each
    reason = db.batches.find_one({'experimentId': too_much_vram})['history'][-1]['debugInfo'][0]
    assert 'at least 9000 MiB VRAM' in reason


def test_while_the_nodes_are_full_batches_that_never_fit_are_still_failed_now_and_then(counted_db):
    db, commands = counted_db
    add_experiment(db, 4, time=1)
    scheduler = RecordingScheduler(db, nodes(1, 4 * 512))
    assert scheduler.run_pass() == 4  # full now
    too_large = add_experiment(db, 1, time=2, ram=8192)
    commands.reset()
    assert scheduler.run_pass() == 0
    assert commands.commands == {'find': 1}  # full, and the queue was read just now: nothing more
    scheduler.last_queue_read -= NEVER_FIT_SWEEP_S  # as if that was a while ago
    assert scheduler.run_pass() == 0
    assert db.batches.find_one({'experimentId': too_large})['state'] == 'failed'


def test_fair_reads_each_users_head_of_the_queue_and_serves_them_by_share(counted_db):
    db, commands = counted_db
    add_experiment(db, 2000, time=1, username='alice')
    bob = add_experiment(db, 3, time=2, username='bob')
    carol = add_experiment(db, 2000, time=3, username='carol')
    held = add_experiment(db, 2, time=0, username='alice')  # alice holds two slots already
    for batch in db.batches.find({'registrationTime': 0}):
        db.batches.update_one({'_id': batch['_id']}, {'$set': {'state': 'processing', 'node': 'n0'}})
    db.experiments.update_one({'_id': ObjectId(held)}, {'$set': {'stateCounts': {'processing': 2, 'registered': 0}}})
    scheduler = RecordingScheduler(db, nodes(2, 6 * 512))
    commands.reset()
    assert scheduler.run_pass() == 10
    finds, documents = commands.commands['find'], commands.documents
    placed = Counter(db.batches.find_one({'_id': batch_id})['username'] for batch_id, _, _ in scheduler.launched)
    # 12 slots, alice held 2: bob and carol first, then by share in turn (ties by name), bob's queue ends at 3
    assert placed == {'alice': 3, 'bob': 3, 'carol': 4}, placed
    assert {b['state'] for b in db.batches.find({'experimentId': bob})} == {'scheduled'}
    first_of_carol = db.batches.find_one({'experimentId': carol}, sort=[('seq', 1)])
    assert first_of_carol['state'] == 'scheduled'  # FIFO within a user
    # whatever the queues' lengths: the experiments with queued batches, a window of each at most as wide as its
    # user's part of the room (20 slots at 256 MiB a batch, 3 users); reads follow placements
    assert 'distinct' not in commands.commands and finds == 3 + 3
    assert documents <= 2 + 3 + 3 * 7


def test_weights_give_a_user_a_larger_part(counted_db):
    db, _ = counted_db
    add_experiment(db, 100, time=1, username='alice')
    add_experiment(db, 100, time=2, username='bob')
    scheduler = RecordingScheduler(db, nodes(1, 12 * 512), user_weights={'bob': 3})
    assert scheduler.run_pass() == 12
    placed = Counter(db.batches.find_one({'_id': batch_id})['username'] for batch_id, _, _ in scheduler.launched)
    assert placed == {'alice': 3, 'bob': 9}


def test_nothing_new_is_placed_on_a_cordoned_node(counted_db):
    db, _ = counted_db
    add_experiment(db, 30, time=1)
    for name in ('n0', 'n1', 'n2'):
        db.nodes.insert_one({'_id': name, 'state': 'online'})
    assert set_schedulable(db, 'n1', False, 'test') is not None
    scheduler = RecordingScheduler(db, nodes(3, 4 * 512))
    assert scheduler.run_pass() == 8
    assert Counter(node for _, node, _ in scheduler.launched) == {'n0': 4, 'n2': 4}
    set_schedulable(db, 'n1', True, 'test')
    assert scheduler.run_pass() == 4
    assert Counter(node for _, node, _ in scheduler.launched)['n1'] == 4


@pytest.mark.parametrize('policy', ['fair', 'fifo'])
def test_a_batch_whose_write_fails_does_not_stop_the_scheduling_of_the_others(counted_db, policy):
    db, _ = counted_db
    experiment = add_experiment(db, 3, time=1)
    first = db.batches.find_one({'experimentId': experiment}, sort=[('seq', 1)])
    db.batches.update_one({'_id': first['_id']}, {'$set': {'history': 'not a list'}})  # its $push fails
    scheduler = RecordingScheduler(db, nodes(1, 10 * 512), policy=policy)
    assert scheduler.run_pass() == 2
    assert db.batches.find_one({'_id': first['_id']})['state'] == 'registered'
    assert first['_id'] not in {batch_id for batch_id, _, _ in scheduler.launched}


def test_experiments_at_their_limit_cost_no_read_of_their_queue(counted_db):
    """A sweep at batchConcurrencyLimit 1 (one batch running, thousands queued) is one experiment document per pass:
    another user's batch is placed at once, and the pass reads about what it places."""
    db, commands = counted_db
    sweeps = [add_experiment(db, 1500, time=1 + i, limit=1) for i in range(3)]
    for experiment_id in sweeps:
        head = db.batches.find_one({'experimentId': experiment_id}, sort=[('seq', 1)])
        db.batches.update_one({'_id': head['_id']}, {'$set': {'state': 'processing', 'node': 'n0'}})
        db.experiments.update_one({'_id': ObjectId(experiment_id)},
                                  {'$inc': {'stateCounts.registered': -1, 'stateCounts.processing': 1}})
    bob = add_experiment(db, 1, time=10, username='bob')
    scheduler = RecordingScheduler(db, nodes(1, 10 * 512))
    commands.reset()
    assert scheduler.run_pass() == 1
    # active batches, cordoned nodes, the 4 experiments, bob's window; his placement and its counter
    assert commands.commands == {'find': 4, 'update': 2}
    assert commands.documents == 3 + 4 + 1
    assert db.batches.find_one({'experimentId': bob})['state'] == 'scheduled'


def test_a_retried_batch_is_placed_again_in_its_place_in_the_queue(counted_db):
    """The scheduler remembers where each experiment's queue starts; a batch that goes back to the queue (a retry)
    lies before that point and must still be found, and first."""
    db, _ = counted_db
    experiment_id = add_experiment(db, 6, time=1)
    scheduler = RecordingScheduler(db, nodes(1, 2 * 512), policy='fifo')
    lifecycle = BatchLifecycle(db, attempts_to_fail=3, on_requeued=scheduler.heads.forget)
    assert scheduler.run_pass() == 2
    first, second = [db.batches.find_one({'_id': batch_id}) for batch_id, _, _ in scheduler.launched]
    experiment = db.experiments.find_one({'_id': ObjectId(experiment_id)})
    assert lifecycle.start(first, 1, 'n0') and lifecycle.start(second, 1, 'n0')
    assert lifecycle.fail_attempt(dict(first, state='processing'), experiment, 1, 'n0', AttemptFailed(['flaky']))
    assert db.batches.find_one({'_id': first['_id']})['state'] == 'registered'
    assert lifecycle.succeed(dict(second, state='processing'), 1, 'n0', {'state': 'succeeded'})
    assert scheduler.run_pass() == 2
    again = [batch_id for batch_id, _, _ in scheduler.launched[2:]]
    assert again[0] == first['_id']  # the oldest queued batch first
    assert db.batches.find_one({'_id': again[1]})['seq'] == second['seq'] + 1


def test_a_queue_inserted_chunk_by_chunk_is_read_below_the_head_the_scheduler_kept(counted_db):
    """The registrar inserts a large experiment's chunks as its queue empties; a pass that read past the inserted
    batches keeps a head beyond them, and the registrar's forget after each chunk (the daemon's _chunk_inserted) is
    what makes the next pass read the new chunk."""
    db, _ = counted_db
    experiment_id, first = ObjectId(), allocate_seq(db, 'batches', 2500)
    requirements = {'ramMiB': 512, 'gpuVramMiB': []}
    experiment = {'_id': experiment_id, 'username': 'alice', 'registrationTime': 1,
                  'cli': {'inputs': {}, 'outputs': {}},
                  'execution': {'settings': {}}, 'container': {'settings': {'image': {'url': 'img'}, 'ram': 512}},
                  'requirements': requirements, 'batchSeq': first, 'batchCount': 2500, 'stateCounts': {},
                  'seq': allocate_seq(db, 'experiments')}
    registration.stage(db, experiment, [registration.new_batch(str(experiment_id), first + i, 'alice', 1,
                                                               {'inputs': {}, 'outputs': {}}, requirements)
                                        for i in range(2500)])
    scheduler = RecordingScheduler(db, nodes(1, 512 * 3000))

    def forget(inserted_id):
        scheduler.heads.forget(str(inserted_id))
    registration.register_pending(db, on_chunk=forget)  # the first chunk
    assert scheduler.run_pass() == 1000
    assert scheduler.run_pass() == 0  # the others are staged
    registration.register_pending(db, on_chunk=forget)  # the queue is empty: the next chunk
    assert scheduler.run_pass() == 1000
    registration.register_pending(db, on_chunk=forget)
    assert scheduler.run_pass() == 500
    assert db.experiments.find_one({'_id': experiment_id})['registrationComplete'] is True
    launched = {batch_id for batch_id, _, _ in scheduler.launched}
    assert sorted(b['seq'] for b in db.batches.find({'_id': {'$in': list(launched)}}, {'seq': 1})) == \
        list(range(first, first + 2500))


def test_the_connector_checks_of_a_first_batch_are_watched_only_when_other_batches_wait_for_them(counted_db):
    db, _ = counted_db
    with_connectors = {'inputs': {'data': {'type': 'File'}}, 'outputs': {}}
    sweep = add_experiment(db, 3, time=1, cli=with_connectors)
    single = add_experiment(db, 1, time=2, cli=with_connectors, username='bob')
    without = add_experiment(db, 2, time=3, username='carol')  # no connectors: nothing to check
    scheduler = RecordingScheduler(db, nodes(1, 10 * 512))
    assert scheduler.run_pass() == 1 + 1 + 2  # the sweep one at a time until its checks passed
    first_of_sweep = db.batches.find_one({'experimentId': sweep, 'state': 'scheduled'})['_id']
    assert scheduler.watched == [first_of_sweep]  # the single batch checks for nobody else
    assert {db.batches.find_one({'_id': batch_id})['experimentId'] for batch_id, _, _ in scheduler.launched} == {
        sweep, single, without}
