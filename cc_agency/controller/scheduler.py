"""One scheduling pass: read the queue once, place in memory, write each decision as a compare-and-set.

Database work per pass: one read of the batches that hold resources, one read of a window of the queue (indexed
on state + registration time, projected to what placement needs), one read of those batches' experiments, then
one conditional update per decision. Nothing is claimed with a scan-and-modify over the whole queue.
"""
import logging

from bson import ObjectId

from cc_agency import transitions
from cc_agency.controller.placement import BatchRequest, Gpu, NodeCapacity, place
from cc_agency.db import BATCHES, EXPERIMENTS, now
from cc_agency.states import ACTIVE_STATES, FAILED, REGISTERED, SCHEDULED

log = logging.getLogger(__name__)

QUEUE_WINDOW = 1000  # queued batches considered per pass, oldest first
INCOMPLETE_REGISTRATION_TTL_S = 300


def node_capacities(node_status, active_batches):
    """NodeCapacity of every node with known hardware, holding what its active batches use."""
    capacities = {}
    for name, status in node_status.items():
        if status.get('ramMiB') is None:
            continue
        gpus = [Gpu(gpu['id'], gpu['vram']) for gpu in status.get('gpus') or []]
        capacities[name] = NodeCapacity(name, status['ramMiB'], gpus=gpus, online=status.get('state') == 'online')
    for batch in active_batches:
        capacity = capacities.get(batch.get('node'))
        if capacity is not None:
            capacity.used_ram_mib += batch['requirements']['ramMiB']
            capacity.used_gpu_ids.update(batch.get('usedGPUs') or ())
    return capacities


def schedule_pass(controller):
    """Place what can be placed now; returns the number of batches scheduled."""
    db = controller.db
    active = list(db[BATCHES].find({'state': {'$in': list(ACTIVE_STATES)}},
                                   {'node': 1, 'requirements': 1, 'usedGPUs': 1, 'experimentId': 1}))
    capacities = node_capacities(controller.node_status(), active)
    queue = list(db[BATCHES].find({'state': REGISTERED}, {'experimentId': 1, 'requirements': 1, 'attempts': 1})
                 .sort([('registrationTime', 1), ('_id', 1)]).limit(QUEUE_WINDOW))
    if not queue or not capacities:
        return 0
    experiment_ids = {batch['experimentId'] for batch in queue}
    experiments = {str(doc['_id']): doc for doc in db[EXPERIMENTS].find(
        {'_id': {'$in': [ObjectId(i) for i in experiment_ids]}},
        {'registrationComplete': 1, 'execution.settings.batchConcurrencyLimit': 1})}

    concurrency = {}
    for experiment_id, experiment in experiments.items():
        limit = experiment.get('execution', {}).get('settings', {}).get('batchConcurrencyLimit')
        if limit:
            concurrency[experiment_id] = [limit, sum(1 for b in active if b['experimentId'] == experiment_id)]

    by_id = {batch['_id']: batch for batch in queue}
    requests = [BatchRequest(batch['_id'], batch['experimentId'], batch['requirements']['ramMiB'],
                             tuple(batch['requirements'].get('gpuVramMiB') or ()))
                for batch in queue if experiments.get(batch['experimentId'], {}).get('registrationComplete')]
    placements, unplaceable = place(requests, list(capacities.values()), controller.strategy, concurrency)

    for item in unplaceable:
        batch = db[BATCHES].find_one({'_id': item.batch_id}, {'inputs': 1, 'outputs': 1, 'state': 1, 'experimentId': 1})
        if batch and batch['state'] == REGISTERED:
            transitions.transition(db, batch, FAILED, debug_info=['no node can ever run this batch: ' + item.reason])
    scheduled = 0
    for placement in placements:
        batch = by_id[placement.batch_id]
        attempt = batch.get('attempts', 0) + 1
        if transitions.transition(db, {'_id': batch['_id'], 'state': REGISTERED}, SCHEDULED, node=placement.node,
                                  set_fields={'usedGPUs': list(placement.gpu_ids) or None},
                                  inc_fields={'attempts': 1}, match={'attempts': attempt - 1}):
            controller.launch(batch['_id'], placement.node, attempt, placement.gpu_ids)
            scheduled += 1
    return scheduled


def remove_incomplete_registrations(db):
    """Experiments whose registration broke off half-way (database lost mid-request) are removed with their batches."""
    cutoff = now() - INCOMPLETE_REGISTRATION_TTL_S
    for experiment in db[EXPERIMENTS].find({'registrationComplete': False, 'registrationTime': {'$lt': cutoff}}, {'_id': 1}):
        db[BATCHES].delete_many({'experimentId': str(experiment['_id'])})
        db[EXPERIMENTS].delete_one({'_id': experiment['_id']})
        log.warning('removed half-registered experiment %s', experiment['_id'])
