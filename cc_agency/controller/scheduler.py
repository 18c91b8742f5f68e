"""One scheduling pass: read what can be decided now, oldest first, place it in memory, write each decision as a CAS.

The database work of a pass is proportional to what the pass decides, not to the length of the queue:
1. one read of the batches that hold resources (scheduled, processing), projected to what placement needs, and,
   when some node has room, one of the cordoned nodes (cc_agency/cordon.py): nothing new is placed on those;
2. one read of the experiments with queued batches (their counters say so: `stateCounts.registered`, indexed).
   Their requirements (RAM, GPUs: the same for every batch of an experiment) and their batchConcurrencyLimit
   against what they hold (step 1) say which can be decided now: those that fit the largest free RAM and the most
   free GPUs of one node and are below their limit, and those that no node could ever hold (they fail at once).
   The batches of the others are not read at all, however many wait: a sweep of 10,000 batches at
   batchConcurrencyLimit 1 costs one experiment document per pass, not 10,000 batches;
3. the queue of each experiment that can be decided, in windows of its batches' `seq` (an index range each; see
   queue_heads.py for why not a sorted read), merged oldest first across experiments and read lazily, only as far
   as the room left in the pass needs. When no node has room for the smallest batch, a pass reads no queue at all,
   except every NEVER_FIT_SWEEP_S to fail the batches that can never run;
4. one conditional update per decision (and its counter), then the attempt is launched.

With the `fair` policy (the default; `fifo` is the order of registration alone) the experiments' queues are merged
per user instead, and `fairshare.fair_pass` takes the next batch from the user with the smallest dominant share of
RAM and GPUs (what their scheduled and processing batches hold, read in step 1).

Connector checks run once per experiment and image (see jobs.py): while an experiment that uses connectors has
no check recorded, it runs one batch at a time, and `connector_checks` watches that batch's container for the
agent's "checks passed" line, so the rest of the experiment starts as soon as the first checks passed, without
checks of its own.
"""
import heapq
import logging
import time
from collections import Counter, defaultdict

import pymongo.errors

from cc_agency.batch_counts import QUEUED_EXPERIMENTS
from cc_agency.controller import jobs
from cc_agency.controller.fairshare import FAIR, DominantShares, fair_pass
from cc_agency.controller.placement import BatchRequest, Gpu, NodeCapacity, Placement, Placer, Unplaceable
from cc_agency.controller.queue_heads import QueueHeads
from cc_agency.cordon import cordoned_nodes
from cc_agency.db import BATCHES, EXPERIMENTS, SEQ
from cc_agency.red import MIN_RAM_MIB
from cc_agency.registration import CHUNK_BATCHES
from cc_agency.states import ACTIVE_STATES, NODE_ONLINE, REGISTERED

log = logging.getLogger(__name__)

PAGE_LIMIT = 1000  # most queued batches of one experiment read in one round trip
MAX_WINDOW = 1 << 16  # widest seq window, reached by doubling over windows that held no queued batch
NEVER_FIT_SWEEP_S = 10  # while no node has room: how often batches that can never run are looked for
QUEUE_PROJECTION = {'experimentId': 1, 'requirements': 1, 'attempts': 1, SEQ: 1}
ACTIVE_PROJECTION = {'node': 1, 'requirements': 1, 'usedGPUs': 1, 'experimentId': 1, 'username': 1}
EXPERIMENT_PROJECTION = {'execution.settings.batchConcurrencyLimit': 1, 'username': 1, 'requirements': 1,
                         'batchSeq': 1, 'batchCount': 1, 'registrationComplete': 1, SEQ: 1,
                         'disableConnectorValidation': 1, 'connectorChecksPassed': 1, 'cli.inputs': 1,
                         'cli.outputs': 1}


def node_capacities(node_status, active_batches):
    """NodeCapacity of every node with known hardware, holding what its active batches use."""
    capacities = {}
    for name, status in node_status.items():
        if status.get('ramMiB') is None:
            continue
        gpus = [Gpu(gpu['id'], gpu['vram']) for gpu in status.get('gpus') or []]
        schedulable = status.get('state') == NODE_ONLINE and not status.get('draining')
        capacities[name] = NodeCapacity(name, status['ramMiB'], gpus=gpus, online=schedulable)
    for batch in active_batches:
        capacity = capacities.get(batch.get('node'))
        if capacity is not None:
            capacity.used_ram_mib += batch['requirements']['ramMiB']
            capacity.used_gpu_ids.update(batch.get('usedGPUs') or ())
    return capacities


def cluster_shares(nodes, active_batches, user_weights):
    """DominantShares over the online nodes, charged with what each user's active batches hold (pure)."""
    online = [node for node in nodes if node.online]
    shares = DominantShares(sum(node.ram_mib for node in online), sum(len(node.gpus) for node in online),
                            user_weights)
    for batch in active_batches:
        shares.charge(batch.get('username'), batch['requirements']['ramMiB'], len(batch.get('usedGPUs') or ()))
    return shares


def concurrency_limit(experiment, default_limit=None):
    """How many batches of the experiment may be scheduled or processing at once (None: no limit); `default_limit`
    for a RED without batchConcurrencyLimit (controller.scheduling.batch_concurrency_limit, 64 as in 9.x)."""
    limit = experiment.get('execution', {}).get('settings', {}).get('batchConcurrencyLimit', default_limit)
    if jobs.connector_checks_pending(experiment):
        limit = 1  # the first batch checks the connectors for all others
    return limit


def _others_wait_for_checks(experiment):
    """Whether batches of the experiment wait for the connector checks of the one being scheduled: only then is its
    agent's stderr followed (cc_agency/controller/connector_checks.py), which costs the node a listing of its
    containers every 0.1 s until the container is there, and a log stream. An experiment of one batch has nobody
    to tell (pure)."""
    return jobs.connector_checks_pending(experiment) and experiment.get('batchCount') != 1


def merge_by_seq(sources):
    """Merge iterables of batches, each in `seq` order, into one in `seq` order (pure).

    `sources`: [(lower bound of the source's seqs, iterable)]. A source is started only once the merged order
    reaches its lower bound, so that a pass which stops early (no room left) never reads the queues behind.
    """
    waiting = sorted(((bound, index, items) for index, (bound, items) in enumerate(sources)), reverse=True,
                     key=lambda source: (source[0], source[1]))
    heap = []
    while True:
        while waiting and (not heap or waiting[-1][0] < heap[0][0]):
            _, index, items = waiting.pop()
            iterator = iter(items)
            first = next(iterator, None)
            if first is not None:
                heapq.heappush(heap, (first[SEQ], index, first, iterator))
        if not heap:
            return
        _, index, batch, iterator = heapq.heappop(heap)
        yield batch
        following = next(iterator, None)
        if following is not None:
            heapq.heappush(heap, (following[SEQ], index, following, iterator))


def page_limit(placer):
    """At most as many batches as the free RAM of the online nodes could take (each needs >= MIN_RAM_MIB)."""
    slots = sum(node.free_ram_mib // MIN_RAM_MIB for node in placer.nodes if node.online and node.free_ram_mib > 0)
    return max(1, min(PAGE_LIMIT, slots))


class Scheduler:
    """Places batches on nodes, one pass at a time (`run_pass`).

    :param nodes: the NodeBoard (where placement may put what)
    :param lifecycle: the BatchLifecycle that writes each decision
    :param launch: starts a scheduled attempt: Launcher.launch
    :param watch_checks: watch(batch_id, attempt, node) for the first batch of an experiment whose connector checks
        are pending and whose other batches wait for them: CheckWatcher.watch
    :param policy: which user is served next: `fair` (dominant-resource fairness) or `fifo` (registration order)
    :param user_weights: {username: weight} for `fair` (others weigh 1)
    :param heads: the QueueHeads that the life cycle's on_requeued keeps honest (a new one: this scheduler's alone)
    """

    def __init__(self, db, nodes, strategy, lifecycle, launch, watch_checks, policy=FAIR, user_weights=None,
                 default_concurrency_limit=None, heads=None):
        self.db = db
        self.default_concurrency_limit = default_concurrency_limit
        self.nodes = nodes
        self.strategy = strategy
        self.policy = policy
        self.user_weights = dict(user_weights or {})
        self.lifecycle = lifecycle
        self.launch = launch
        self.watch_checks = watch_checks
        self.heads = heads if heads is not None else QueueHeads()
        self.last_queue_read = 0.0  # time.monotonic() of the last pass that read the queue

    def run_pass(self):
        """Place what can be placed now; returns the number of batches scheduled."""
        started = time.perf_counter()
        scheduled = SchedulePass(self).run()
        log.debug('scheduling pass: %d scheduled in %.1f ms', scheduled, 1000 * (time.perf_counter() - started))
        return scheduled


class SchedulePass:
    """The state of one pass of `scheduler`; `run()` returns the number of batches scheduled."""

    def __init__(self, scheduler):
        self.scheduler = scheduler
        self.db = scheduler.db
        self.experiments = {}  # experiment id -> projected document, of those with queued batches
        self.blocked = set()  # experiments none of whose batches can be placed in this pass
        self.scheduled = 0
        self.placer = None
        self.active_per_experiment = Counter()
        self.reads = {}  # experiment id -> (head version, whether its head may be stored) of the queues read
        self.frontier = {}  # experiment id -> every queued batch below this seq was handed to _decide
        self.kept = {}  # experiment id -> lowest seq handed to _decide that was not placed
        self.room_parts = 1  # among how many users the room is shared (fair)

    def run(self):
        active = list(self.db[BATCHES].find({'state': {'$in': list(ACTIVE_STATES)}}, ACTIVE_PROJECTION))
        capacities = node_capacities(self.scheduler.nodes.snapshot(), active)
        if not capacities:
            return 0
        if any(node.online and node.free_ram_mib >= MIN_RAM_MIB for node in capacities.values()):
            # only a pass that may place anything asks which nodes are cordoned: a full cluster costs no read
            for name in cordoned_nodes(self.db) & set(capacities):
                capacities[name].online = False
        self.active_per_experiment = Counter(batch['experimentId'] for batch in active)
        self.placer = Placer(capacities.values(), self.scheduler.strategy, concurrency={})
        room = self._room()
        if not room and not self._never_fit_sweep_due():
            return 0  # full: only the sweep for batches that never fit may read the queue
        fair = self.scheduler.policy == FAIR and room
        queues = self._queues(room, fair)
        if fair:
            shares = cluster_shares(self.placer.nodes, active, self.scheduler.user_weights)
            fair_pass({user: merge_by_seq(sources) for user, sources in queues.items()}, shares, self._place_held,
                      has_room=self._room)
        else:
            for batch in merge_by_seq([source for sources in queues.values() for source in sources]):
                self._decide(batch)
                if room and not self._room():
                    break
        self._store_heads()
        return self.scheduled

    def _room(self):
        return self.placer.max_free_ram_mib() >= MIN_RAM_MIB

    def _never_fit_sweep_due(self):
        """While the nodes are full, the queue is still read for batches that can never run, but only every
        NEVER_FIT_SWEEP_S (a pass with room reads them anyway), so that a full cluster costs no queue reads."""
        return time.monotonic() - self.scheduler.last_queue_read >= NEVER_FIT_SWEEP_S

    def _queues(self, room, fair):
        """{user: [(lower bound, lazy queue)]} of the experiments whose batches can be decided now."""
        experiments = list(self.db[EXPERIMENTS].find(QUEUED_EXPERIMENTS, EXPERIMENT_PROJECTION))
        self.scheduler.last_queue_read = time.monotonic()
        self.experiments = {str(doc['_id']): doc for doc in experiments}
        if fair:  # each user's windows are about their part of the room
            self.room_parts = max(1, len({doc.get('username') for doc in experiments}))
        self.scheduler.heads.keep_only(set(self.experiments))
        queues = defaultdict(list)
        for experiment_id, experiment in self.experiments.items():
            try:
                source = self._queue_if_decidable(experiment_id, experiment, room)
            except Exception as e:  # one bad experiment document must not stop the others
                log.error('experiment %s: its batches are not scheduled in this pass (%s)', experiment_id,
                          type(e).__name__)
                continue
            if source is not None:
                queues[experiment.get('username')].append(source)
        return queues

    def _queue_if_decidable(self, experiment_id, experiment, room):
        """(lower bound, lazy queue) of the experiment if some of its batches can be decided now, else None."""
        never_fits = self._never_fits(experiment_id, experiment) is not None
        if not never_fits:
            if not room:
                return None
            limit = concurrency_limit(experiment, self.scheduler.default_concurrency_limit)
            if limit is not None:
                self.placer.concurrency[experiment_id] = [limit, self.active_per_experiment[experiment_id]]
            if not self._may_place(experiment_id, experiment):
                return None
        numbered = experiment.get('batchSeq') is not None and experiment.get('batchCount') is not None
        if not numbered:  # stored before batches had consecutive numbers
            return 0, self._experiment_queue(experiment_id, experiment, None, never_fits)
        head, version = self.scheduler.heads.get(experiment_id, experiment['batchSeq'])
        # batches still to be inserted may lie below any head a read could find: unless the registration is complete,
        # or is one that only this process's registrar inserts (more than one chunk), which forgets the head after
        # each chunk (the daemon's _chunk_inserted), the queue is read from its start
        complete = experiment.get('registrationComplete') is not False or experiment['batchCount'] > CHUNK_BATCHES
        if not complete:
            head = experiment['batchSeq']
        self.reads[experiment_id] = (version, complete)
        return head, self._experiment_queue(experiment_id, experiment, head, never_fits)

    def _never_fits(self, experiment_id, experiment):
        requirements = experiment['requirements']
        return self.placer.never_fit_reason(BatchRequest(None, experiment_id, requirements['ramMiB'],
                                                         tuple(requirements.get('gpuVramMiB') or ())))

    def _may_place(self, experiment_id, experiment):
        """Below its limit, and its batches fit the room left on some node (RAM, number of free GPUs)."""
        requirements = experiment['requirements']
        return (experiment_id not in self.blocked and not self.placer.at_limit(experiment_id)
                and requirements['ramMiB'] <= self.placer.max_free_ram_mib()
                and len(requirements.get('gpuVramMiB') or ()) <= self.placer.max_free_gpu_count())

    def _experiment_queue(self, experiment_id, experiment, head, never_fits):
        """The experiment's queued batches from `head` on, oldest first, read a window of seq at a time while the
        pass may place them (an experiment whose batches `never_fits` is read to the end: they fail)."""
        query = {'experimentId': experiment_id, 'state': REGISTERED}
        if head is None:  # no consecutive numbers: one read of all its queued batches
            yield from sorted(self.db[BATCHES].find(query, QUEUE_PROJECTION), key=lambda batch: batch[SEQ])
            return
        end = experiment['batchSeq'] + experiment['batchCount']
        low, width = head, self._window(experiment_id)
        self.frontier[experiment_id] = low
        while low < end and (never_fits or (self._room() and self._may_place(experiment_id, experiment))):
            high = min(end, low + width)
            page = sorted(self.db[BATCHES].find(dict(query, **{SEQ: {'$gte': low, '$lt': high}}), QUEUE_PROJECTION),
                          key=lambda batch: batch[SEQ])
            for batch in page:
                self.frontier[experiment_id] = batch[SEQ]
                yield batch
            self.frontier[experiment_id] = low = high
            if not page:
                width = min(2 * width, MAX_WINDOW)  # gallop over batches that left the queue

    def _window(self, experiment_id):
        """How many seq numbers the first window of an experiment's queue spans: what the pass could still place
        of it."""
        wanted = -(-page_limit(self.placer) // self.room_parts)  # rounded up
        limit = self.placer.concurrency.get(experiment_id)
        if limit is not None:
            wanted = min(wanted, limit[0] - limit[1])
        return max(1, wanted)

    def _store_heads(self):
        for experiment_id, (version, storable) in self.reads.items():
            if storable and experiment_id in self.frontier:
                head = min(self.frontier[experiment_id], self.kept.get(experiment_id, self.frontier[experiment_id]))
                self.scheduler.heads.advance(experiment_id, version, head)

    def _place_held(self, batch):
        """fair_pass's placement callback: what the batch now holds (RAM, GPU count), or None."""
        placement = self._decide(batch)
        if placement is None:
            return None
        return batch['requirements']['ramMiB'], len(placement.gpu_ids)

    def _decide(self, batch):
        """Place, fail or skip one queued batch; returns its Placement when it was placed. A batch whose document or
        write is bad is logged and skipped, so that it never stops the scheduling of the others (a lost database
        ends the pass: every other batch would fail the same way)."""
        placement = None
        try:
            placement = self._decide_one(batch)
        except pymongo.errors.ConnectionFailure:
            raise
        except Exception as e:  # the type only: a database error's text may quote the document
            log.error('batch %s: not scheduled in this pass (%s)', batch.get('_id'), type(e).__name__)
        if placement is None:  # it may still be queued: the experiment's head stays at or below it
            experiment_id = batch.get('experimentId')
            self.kept[experiment_id] = min(self.kept.get(experiment_id, batch[SEQ]), batch[SEQ])
        return placement

    def _decide_one(self, batch):
        experiment_id = batch['experimentId']
        if experiment_id in self.blocked:
            return None
        experiment = self.experiments[experiment_id]  # its queue was read: its limit is set (_queue_if_decidable)
        requirements = batch['requirements']
        decision = self.placer.place(BatchRequest(batch['_id'], experiment_id, requirements['ramMiB'],
                                                  tuple(requirements.get('gpuVramMiB') or ())))
        if isinstance(decision, Placement):
            self._schedule(batch, decision, experiment)
            return decision
        if isinstance(decision, Unplaceable):
            self._fail(batch, decision.reason)
        elif self.placer.at_limit(experiment_id):
            self.blocked.add(experiment_id)
        return None

    def _schedule(self, batch, placement, experiment):
        attempt = batch.get('attempts', 0) + 1
        if self.scheduler.lifecycle.schedule(batch['_id'], batch['experimentId'], attempt, placement.node,
                                             placement.gpu_ids):
            self.scheduler.launch(batch['_id'], placement.node, attempt, placement.gpu_ids)
            if _others_wait_for_checks(experiment):
                self.scheduler.watch_checks(batch['_id'], attempt, placement.node)
            self.scheduled += 1
        # else: cancelled meanwhile; what the placer holds for it is given back by the next pass

    def _fail(self, batch, reason):
        full = self.db[BATCHES].find_one({'_id': batch['_id']}, {'inputs': 1, 'outputs': 1, 'state': 1,
                                                                 'experimentId': 1})
        if full and full['state'] == REGISTERED:
            self.scheduler.lifecycle.fail_unplaceable(full, reason)
