"""Make the database and a node agree, each time the node comes (back) online — also at controller start.

For every container of this agency on the node: the current attempt of a processing batch that no thread of
this process watches is adopted (if it exited meanwhile, its result is recorded at once); anything else is a
stale container of an older attempt or of an ended batch and is removed. A batch the database places on this
node that has neither a container nor a watching thread has vanished: its attempt fails (and is retried).
"""
import logging

from bson import ObjectId
from bson.errors import InvalidId

from cc_agency.controller.runner import BatchRun
from cc_agency.db import BATCHES
from cc_agency.states import ACTIVE_STATES, PROCESSING

log = logging.getLogger(__name__)


def _batch_id(label):
    try:
        return ObjectId(label)
    except (InvalidId, TypeError):
        return None


def reconcile_node(controller, node):
    engine = controller.engines[node]
    with controller.scheduling_lock:
        containers = engine.batch_containers()
        runs = controller.runs()
        active = {batch['_id']: batch for batch in controller.db[BATCHES].find(
            {'node': node, 'state': {'$in': list(ACTIVE_STATES)}}, {'attempts': 1, 'state': 1, 'usedGPUs': 1})}
        accounted = set()
        for container in containers:
            batch_id = _batch_id(container['batchId'])
            batch = active.get(batch_id)
            run = runs.get(batch_id)
            current = batch is not None and batch['attempts'] == container['attempt']
            if run is not None and run['attempt'] == container['attempt'] and run['node'] == node:
                accounted.add(batch_id)
            elif current and run is None and batch['state'] == PROCESSING:
                log.info('batch %s: adopting container %s of attempt %d on node %s', batch_id, container['id'][:12],
                         container['attempt'], node)
                controller.launch(batch_id, node, container['attempt'], batch.get('usedGPUs') or (), container['id'])
                accounted.add(batch_id)
            else:
                log.info('node %s: removing stale container %s (batch %s, attempt %d)', node, container['id'][:12],
                         container['batchId'], container['attempt'])
                engine.remove(container['id'])
        for batch_id, batch in active.items():
            if batch_id in accounted or batch_id in runs:
                continue
            reason = 'the container of this attempt vanished from node {} (engine or controller restarted)'.format(node)
            BatchRun(controller, batch_id, node, batch['attempts']).abandon(batch['state'], reason)
