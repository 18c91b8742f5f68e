"""How many batches of each experiment are in each state: the numbers behind every progress bar and count.

Counting batches is slow on a large experiment (a MongoDB-wire server reads every batch it counts: seconds for
100,000 on SecantusDB), so the experiment document keeps them: `stateCounts` holds how many of its batches are
in each state, changed by BatchLifecycle (cc_agency/transitions.py) right after each transition it makes, and,
for `registered`, by the registration as each staged chunk of batches is inserted (`stagedChunks`: {chunk id:
number of its batches that are registered}, cc_agency/registration.py). Staged batches count as registered: they
are, only their documents are still in their chunks (cc_agency/staged_batches.py, whose cancel moves a count from
`stagedChunks` to `cancelled`). Indexed, `stateCounts.registered` (the queued batches in the collection) is also
how the scheduler finds the experiments with queued batches without reading the queue (QUEUED_EXPERIMENTS), and
how the registrar knows when an experiment's queue needs its next chunk. The counter write follows the batch's own
compare-and-set, so a process that dies between the two leaves a counter one off: the controller recounts the
experiments with unfinished or staged batches when it starts (`recount_unfinished`). An experiment without
`stateCounts` (stored before they existed) is counted instead, one whose counts lack `registered` gets `batchCount`
minus the others and minus what is staged.
"""
from bson import ObjectId

from cc_agency.db import BATCHES, EXPERIMENTS, PENDING_BATCHES
from cc_agency.states import ALL_STATES, REGISTERED, TERMINAL_STATES

COUNTS = 'stateCounts'
STAGED = 'stagedChunks'
COUNTED_STATES = tuple(state for state in ALL_STATES if state != REGISTERED)
QUEUED = '{}.{}'.format(COUNTS, REGISTERED)
QUEUED_EXPERIMENTS = {QUEUED: {'$gt': 0}}  # the experiments with batches in the queue (an index holds them)


def zero_counts():
    """{state: 0} for every batch state, in life-cycle order (pure)."""
    return {state: 0 for state in ALL_STATES}


def counts_from(batch_count, state_counts, staged=None):
    """{state: n} from an experiment's batchCount, stateCounts and stagedChunks (pure). The staged batches that are
    registered (stagedChunks: {chunk id: how many}) count as registered: they are (cc_agency.staged_batches)."""
    staged_count = sum((staged or {}).values())
    counts = zero_counts()
    for state in COUNTED_STATES:
        counts[state] = max(0, int((state_counts or {}).get(state, 0)))
    if REGISTERED in (state_counts or {}):
        inserted = max(0, int(state_counts[REGISTERED]))
    else:
        inserted = max(0, batch_count - staged_count - sum(counts[state] for state in COUNTED_STATES))
    counts[REGISTERED] = inserted + max(0, staged_count)
    return counts


def counter_update(from_state, to_state):
    """The experiment's `$inc` for one batch moving from_state -> to_state (pure; None when nothing changes)."""
    if from_state == to_state:
        return None
    return {'$inc': {'{}.{}'.format(COUNTS, from_state): -1, '{}.{}'.format(COUNTS, to_state): 1}}


def count_transition(db, experiment_id, from_state, to_state):
    update = counter_update(from_state, to_state)
    if update is not None and experiment_id:
        db[EXPERIMENTS].update_one({'_id': ObjectId(experiment_id)}, update)


def _aggregate(db, experiment_ids):
    counts = {experiment_id: zero_counts() for experiment_id in experiment_ids}
    if not experiment_ids:
        return counts
    pipeline = [
        {'$match': {'experimentId': {'$in': list(experiment_ids)}}},
        {'$group': {'_id': {'experimentId': '$experimentId', 'state': '$state'}, 'n': {'$sum': 1}}},
    ]
    for group in db[BATCHES].aggregate(pipeline):
        experiment_id, state = group['_id']['experimentId'], group['_id']['state']
        if state in counts.get(experiment_id, {}):
            counts[experiment_id][state] = group['n']
    return counts


def batch_counts(db, experiments):
    """{experiment id: {state: number of its batches}} of experiment documents (with batchCount, stateCounts and
    stagedChunks), every state present; those without stateCounts are counted in one aggregation."""
    counts, uncounted = {}, []
    for doc in experiments:
        if COUNTS in doc and isinstance(doc.get('batchCount'), int):
            counts[str(doc['_id'])] = counts_from(doc['batchCount'], doc[COUNTS], doc.get(STAGED))
        else:
            uncounted.append(str(doc['_id']))
    counts.update(_aggregate(db, uncounted))
    return counts


def total(db, experiment_filter, state=None):
    """How many batches the experiments matching `experiment_filter` have (in `state`, or in all states): one read
    of their counters, whatever the number of batches."""
    experiments = list(db[EXPERIMENTS].find(experiment_filter, {'batchCount': 1, COUNTS: 1, STAGED: 1}))
    counts = batch_counts(db, experiments).values()
    return sum(c[state] if state else sum(c.values()) for c in counts)


def recount(db, experiment_id):
    """Set an experiment's stateCounts and stagedChunks from its batches, inserted and staged (slow on a large
    experiment; see the module docstring)."""
    from cc_agency import staged_batches  # it reads the chunks, and counts with this module's names
    counts = _aggregate(db, [str(experiment_id)])[str(experiment_id)]
    staged_states, staged = staged_batches.count_staged(db, experiment_id)
    for state, number in staged_states.items():
        counts[state] += number
    db[EXPERIMENTS].update_one({'_id': ObjectId(experiment_id)}, {'$set': {COUNTS: counts, STAGED: staged}})


def recount_unfinished(db):
    """Recount every experiment that still has a batch that has not ended, or staged batches; returns how many were
    recounted."""
    experiment_ids = set(db[BATCHES].distinct('experimentId', {'state': {'$nin': list(TERMINAL_STATES)}}))
    experiment_ids.update(str(e) for e in db[PENDING_BATCHES].distinct('experimentId'))
    for experiment_id in experiment_ids:
        recount(db, experiment_id)
    return len(experiment_ids)
