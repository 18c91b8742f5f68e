"""How many batches of each experiment are in each state: the numbers behind every progress bar.

One function, `batch_counts`, is the seam: today it is one aggregation over the batches (index experimentId,
state); a later version may read counters kept at each transition instead, without its callers changing.
Counts come from the database, so a page about an experiment of 100,000 batches never loads its batches.
"""
from cc_agency.db import BATCHES
from cc_agency.states import ALL_STATES


def zero_counts():
    """{state: 0} for every batch state, in life-cycle order (pure)."""
    return {state: 0 for state in ALL_STATES}


def batch_counts(db, experiment_ids):
    """{experiment_id: {state: number of its batches}} for the given experiment ids (strings), every state present.

    One `$group` by (experimentId, state) over the batches of all of them; grouping by two plain fields works on
    every MongoDB-wire server (SecantusDB cannot follow paths into arrays, which this does not need).
    """
    ids = [str(experiment_id) for experiment_id in experiment_ids]
    counts = {experiment_id: zero_counts() for experiment_id in ids}
    if not ids:
        return counts
    pipeline = [
        {'$match': {'experimentId': {'$in': ids}}},
        {'$group': {'_id': {'experimentId': '$experimentId', 'state': '$state'}, 'n': {'$sum': 1}}},
    ]
    for group in db[BATCHES].aggregate(pipeline):
        experiment_id, state = group['_id']['experimentId'], group['_id']['state']
        if state in counts.get(experiment_id, {}):
            counts[experiment_id][state] = group['n']
    return counts
