"""Make the database and a node agree: when the node comes (back) online, at controller start, and periodically.

For every container of this agency on the node: the current attempt of a processing batch that no thread of
this process watches is adopted (if it exited meanwhile, its result is recorded at once); anything else is a
stale container of an older attempt or of an ended batch and is removed. A batch the database places on this
node that has neither a container nor a watching thread has vanished: its attempt fails (and is retried).

A batch still `scheduled` here that no thread of this process starts (the controller died between placing and
starting it) is resumed: the same attempt is started again on this node, replacing a container of it that an
earlier process may have created. Its command never ran as that attempt (the batch would be processing), so a
controller restart costs it no attempt; the container name, unique per engine and attempt, keeps it to one run.
"""
import logging

from bson import ObjectId
from bson.errors import InvalidId

from cc_agency.db import BATCHES, BY_STATE
from cc_agency.states import ACTIVE_STATES, PROCESSING, SCHEDULED

log = logging.getLogger(__name__)


def _batch_id(label):
    try:
        return ObjectId(label)
    except (InvalidId, TypeError):
        return None


def plan_reconciliation(node, containers, active_batches, runs):
    """Decide what to do (pure): returns (adopt, resume, remove, vanished).

    adopt: [(batch_id, attempt, container_id, gpu_ids)], resume: [(batch_id, attempt, gpu_ids)],
    remove: [container_id], vanished: [batch_id].
    """
    adopt, remove, accounted = [], [], set()
    for container in containers:
        batch_id = _batch_id(container['batchId'])
        batch = active_batches.get(batch_id)
        run = runs.get(batch_id)
        current = batch is not None and batch['attempts'] == container['attempt']
        if run is not None and run['attempt'] == container['attempt'] and run['node'] == node:
            accounted.add(batch_id)  # a thread of this process watches it
        elif current and run is None:
            if batch['state'] == PROCESSING:
                adopt.append((batch_id, container['attempt'], container['id'], _gpu_ids(batch)))
                accounted.add(batch_id)
            # scheduled: the batch is resumed below, and its attempt replaces this container
        else:
            remove.append(container['id'])
    unwatched = [batch_id for batch_id in active_batches if batch_id not in accounted and batch_id not in runs]
    resume = [(batch_id, active_batches[batch_id]['attempts'], _gpu_ids(active_batches[batch_id]))
              for batch_id in unwatched if active_batches[batch_id]['state'] == SCHEDULED]
    vanished = [batch_id for batch_id in unwatched if active_batches[batch_id]['state'] != SCHEDULED]
    return adopt, resume, remove, vanished


def _gpu_ids(batch):
    return tuple(batch.get('usedGPUs') or ())


class Reconciler:
    """Reconciles one node at a time with what the database and this process's runs say.

    :param launch: starts (or adopts) an attempt: Launcher.launch
    :param scheduling_lock: held while deciding, so that the scheduler does not place on a node being reconciled
    """

    def __init__(self, db, engines, runs, lifecycle, launch, scheduling_lock):
        self.db = db
        self.engines = engines
        self.runs = runs
        self.lifecycle = lifecycle
        self.launch = launch
        self.scheduling_lock = scheduling_lock

    def reconcile(self, node):
        engine = self.engines[node]
        containers = engine.batch_containers()  # the only engine call: outside the lock, so a slow node stalls nothing
        with self.scheduling_lock:
            active = {batch['_id']: batch for batch in self.db[BATCHES].find(
                {'node': node, 'state': {'$in': list(ACTIVE_STATES)}}, {'attempts': 1, 'state': 1, 'usedGPUs': 1})}
            adopt, resume, remove, vanished = plan_reconciliation(node, containers, active, self.runs.snapshot())
            for batch_id, attempt, container_id, gpu_ids in adopt:
                log.info('batch %s: adopting container %s of attempt %d on node %s', batch_id, container_id[:12],
                         attempt, node)
                self.launch(batch_id, node, attempt, gpu_ids, container_id)
            for batch_id, attempt, gpu_ids in resume:
                log.info('batch %s: resuming attempt %d, scheduled on node %s but not started', batch_id, attempt, node)
                self.launch(batch_id, node, attempt, gpu_ids)
            for batch_id in vanished:
                self.lifecycle.abandon(batch_id, active[batch_id]['attempts'], node,
                                       'its container vanished from node {} (engine or controller restarted)'.format(node))
        for container_id in remove:
            log.info('node %s: removing stale container %s', node, container_id[:12])
            try:
                engine.remove(container_id)
            except Exception as e:  # a busy engine is not a lost node: the next reconciliation tries again
                log.warning('node %s: stale container %s not removed now (%s)', node, container_id[:12], e)

    def node_lost(self, node, reason):
        """Fail the attempts the database places on a node that stayed offline; they are retried elsewhere."""
        active = self.db[BATCHES].find({'node': node, 'state': {'$in': list(ACTIVE_STATES)}}, {'attempts': 1},
                                       hint=BY_STATE)
        for batch in list(active):
            self.lifecycle.abandon(batch['_id'], batch['attempts'], node, 'node {} went offline: {}'.format(node, reason))
