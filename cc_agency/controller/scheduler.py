"""One scheduling pass: read what can be decided now, oldest first, place it in memory, write each decision as a CAS.

The database work of a pass is proportional to what the pass decides, not to the length of the queue:
1. one read of the batches that hold resources (scheduled, processing), projected to what placement needs, and,
   when some node has room, one of the cordoned nodes (cc_agency/cordon.py): nothing new is placed on those;
2. the queue in pages, oldest first (keyset on the registration sequence number `seq`). Each page asks only for
   batches that can be decided now: those that fit the largest free RAM and the most free GPUs of one node, and
   those that no node could ever hold (they fail at once); never those of experiments already found blocked in this
   pass (at their batchConcurrencyLimit). A page holds at most as many batches as the free RAM could take, so a
   pass reads about what it places. When no node has room for the smallest batch, a pass reads no queue at all,
   except every NEVER_FIT_SWEEP_S to fail the batches that can never run;
3. one read of the experiments of a page that were not seen yet in this pass;
4. one conditional update per decision, then the attempt is launched.

With the `fair` policy (the default; `fifo` is the order of registration alone) the queue is read per user
instead: one `distinct` of the users with queued batches, then each user's oldest batches in pages as above
(the same filter, plus the username), each page about that user's part of the free room. `fairshare.fair_pass`
takes the next batch from the user with the smallest dominant share of RAM and GPUs (what their scheduled and
processing batches hold, read in step 1), so a pass still reads about what it places, whatever the queue length.

Connector checks run once per experiment and image (see jobs.py): while an experiment that uses connectors has
no check recorded, it runs one batch at a time, and `connector_checks` watches that batch's container for the
agent's "checks passed" line, so the rest of the experiment starts as soon as the first checks passed, without
checks of its own.
"""
import logging
import time
from collections import Counter

import pymongo.errors
from bson import ObjectId

from cc_agency.controller import jobs
from cc_agency.controller.fairshare import FAIR, DominantShares, fair_pass
from cc_agency.controller.placement import BatchRequest, Gpu, NodeCapacity, Placement, Placer, Unplaceable
from cc_agency.cordon import cordoned_nodes
from cc_agency.db import BATCHES, EXPERIMENTS, SEQ
from cc_agency.red import MIN_RAM_MIB
from cc_agency.states import ACTIVE_STATES, NODE_ONLINE, REGISTERED

log = logging.getLogger(__name__)

PAGE_LIMIT = 1000  # most queued batches read in one round trip
NEVER_FIT_SWEEP_S = 10  # while no node has room: how often batches that can never run are looked for
QUEUE_PROJECTION = {'experimentId': 1, 'requirements': 1, 'attempts': 1, SEQ: 1}
ACTIVE_PROJECTION = {'node': 1, 'requirements': 1, 'usedGPUs': 1, 'experimentId': 1, 'username': 1}
EXPERIMENT_PROJECTION = {'execution.settings.batchConcurrencyLimit': 1,
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


def queue_filter(placer, blocked_experiment_ids, after=None):
    """The query for the queued batches that can be decided now, after the keyset `after` (pure).

    A batch can be decided when it fits the room left on one node (RAM, number of free GPUs) or when it is larger
    than anything a node has (it fails). `placer` sorts out the rest (which GPUs, which node) in memory.
    """
    nodes = placer.nodes
    most_gpus = max((len(node.gpus) for node in nodes), default=0)
    vrams = [gpu.vram_mib for node in nodes for gpu in node.gpus]
    fits_now = {'requirements.ramMiB': {'$lte': placer.max_free_ram_mib()},
                'requirements.gpuVramMiB.{}'.format(placer.max_free_gpu_count()): {'$exists': False}}
    never_fits = [{'requirements.ramMiB': {'$gt': max(node.ram_mib for node in nodes)}},
                  {'requirements.gpuVramMiB.{}'.format(most_gpus): {'$exists': True}}]
    if vrams:
        never_fits.append({'requirements.gpuVramMiB': {'$gt': max(vrams)}})
    query = {'state': REGISTERED, '$or': [fits_now] + never_fits}
    if after is not None:
        query[SEQ] = {'$gt': after}
    if blocked_experiment_ids:
        query['experimentId'] = {'$nin': sorted(blocked_experiment_ids)}
    return query


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
        are pending: CheckWatcher.watch
    :param policy: which user is served next: `fair` (dominant-resource fairness) or `fifo` (registration order)
    :param user_weights: {username: weight} for `fair` (others weigh 1)
    """

    def __init__(self, db, nodes, strategy, lifecycle, launch, watch_checks, policy=FAIR, user_weights=None,
                 default_concurrency_limit=None):
        self.db = db
        self.default_concurrency_limit = default_concurrency_limit
        self.nodes = nodes
        self.strategy = strategy
        self.policy = policy
        self.user_weights = dict(user_weights or {})
        self.lifecycle = lifecycle
        self.launch = launch
        self.watch_checks = watch_checks
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
        self.experiments = {}  # experiment id -> projected document (None: gone)
        self.blocked = set()  # experiments none of whose batches can be placed in this pass
        self.scheduled = 0
        self.placer = None
        self.active_per_experiment = Counter()

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
        if self.scheduler.policy == FAIR and self._room():
            self._run_fair(active)
        else:  # fifo, or no room: then only the sweep for batches that never fit may read the queue
            self._run_fifo()
        return self.scheduled

    def _room(self):
        return self.placer.max_free_ram_mib() >= MIN_RAM_MIB

    def _run_fair(self, active):
        """Serve the users with queued batches by dominant share (fairshare.fair_pass), each user's queue read
        lazily in pages of about their part of the room."""
        users = self.db[BATCHES].distinct('username', {'state': REGISTERED})
        self.scheduler.last_queue_read = time.monotonic()
        shares = cluster_shares(self.placer.nodes, active, self.scheduler.user_weights)
        queues = {user: self._user_queue(user, len(users)) for user in users}
        fair_pass(queues, shares, self._place_held, has_room=self._room)

    def _user_queue(self, user, users_count):
        """The user's queued batches that can be decided now, oldest first, read a page at a time."""
        after = None
        while self._room():
            limit = max(1, -(-page_limit(self.placer) // users_count))  # this user's part of the room, rounded up
            query = dict(queue_filter(self.placer, self.blocked, after), username=user)
            page = list(self.db[BATCHES].find(query, QUEUE_PROJECTION).sort(SEQ, 1).limit(limit).batch_size(limit))
            self._load_experiments({batch['experimentId'] for batch in page})
            yield from page
            if len(page) < limit:
                return
            after = page[-1][SEQ]

    def _place_held(self, batch):
        """fair_pass's placement callback: what the batch now holds (RAM, GPU count), or None."""
        placement = self._decide(batch)
        if placement is None:
            return None
        return batch['requirements']['ramMiB'], len(placement.gpu_ids)

    def _run_fifo(self):
        after = None
        while True:
            room = self._room()
            if not room and not self._never_fit_sweep_due():
                break
            limit = page_limit(self.placer) if room else PAGE_LIMIT  # no room: only batches that never fit match
            page = list(self.db[BATCHES].find(queue_filter(self.placer, self.blocked, after), QUEUE_PROJECTION)
                        .sort(SEQ, 1).limit(limit).batch_size(limit))
            self.scheduler.last_queue_read = time.monotonic()
            self._load_experiments({batch['experimentId'] for batch in page})
            for batch in page:
                self._decide(batch)
            if len(page) < limit:
                break
            after = page[-1][SEQ]

    def _never_fit_sweep_due(self):
        """While the nodes are full, the queue is still read for batches that can never run, but only every
        NEVER_FIT_SWEEP_S (a pass with room reads them anyway), so that a full cluster costs no queue reads."""
        return time.monotonic() - self.scheduler.last_queue_read >= NEVER_FIT_SWEEP_S

    def _load_experiments(self, experiment_ids):
        missing = [i for i in experiment_ids if i not in self.experiments]
        if not missing:
            return
        found = {str(doc['_id']): doc for doc in self.db[EXPERIMENTS].find(
            {'_id': {'$in': [ObjectId(i) for i in missing]}}, EXPERIMENT_PROJECTION)}
        for experiment_id in missing:
            self.experiments[experiment_id] = found.get(experiment_id)

    def _decide(self, batch):
        """Place, fail or skip one queued batch; returns its Placement when it was placed. A batch whose document or
        write is bad is logged and skipped, so that it never stops the scheduling of the others (a lost database
        ends the pass: every other batch would fail the same way)."""
        try:
            return self._decide_one(batch)
        except pymongo.errors.ConnectionFailure:
            raise
        except Exception as e:  # the type only: a database error's text may quote the document
            log.error('batch %s: not scheduled in this pass (%s)', batch.get('_id'), type(e).__name__)
            return None

    def _decide_one(self, batch):
        experiment_id = batch['experimentId']
        if experiment_id in self.blocked:
            return None
        experiment = self.experiments.get(experiment_id)
        if experiment is None:
            self.blocked.add(experiment_id)  # its experiment was dropped from the database
            return None
        if experiment_id not in self.placer.concurrency:
            limit = concurrency_limit(experiment, self.scheduler.default_concurrency_limit)
            if limit is not None:
                self.placer.concurrency[experiment_id] = [limit, self.active_per_experiment[experiment_id]]
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
            if jobs.connector_checks_pending(experiment):
                self.scheduler.watch_checks(batch['_id'], attempt, placement.node)
            self.scheduled += 1
        # else: cancelled meanwhile; what the placer holds for it is given back by the next pass

    def _fail(self, batch, reason):
        full = self.db[BATCHES].find_one({'_id': batch['_id']}, {'inputs': 1, 'outputs': 1, 'state': 1,
                                                                 'experimentId': 1})
        if full and full['state'] == REGISTERED:
            self.scheduler.lifecycle.fail_unplaceable(full, reason)
