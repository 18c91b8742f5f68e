"""GET /batches, /batches/count, /batches/<id>, its stdout and stderr; DELETE /batches/<id> cancels it.

stdout and stderr are streamed from GridFS piece by piece (cc_agency/batch_output.py), so a large output costs the
broker one GridFS chunk of memory at a time (a small one is in the output document); only the batch's owner (or an
admin) gets them.
"""
from bson import ObjectId
from flask import Blueprint, Response, jsonify, stream_with_context

from cc_agency import batch_counts, batch_output
from cc_agency.broker.context import bool_arg, broker, db, find_visible, object_id, requires_auth
from cc_agency.broker.documents import batch_json
from cc_agency.broker.errors import ApiError, not_found
from cc_agency.broker.listing import find_page, list_filter
from cc_agency.db import BATCHES, EXPERIMENTS
from cc_agency.states import TERMINAL_STATES
from cc_agency.transitions import BatchLifecycle

blueprint = Blueprint('batches', __name__)
FILTERS = ('username', 'state', 'node', 'experimentId')
LIST_WITHOUT = ('history', 'inputs', 'outputs')
TIMELINE_WITHOUT = ('inputs', 'outputs')  # the history is read, then cut down to its timeline
TIMELINE_FIELDS = ('state', 'time', 'node')
CANCEL_TRIES = 5
MAX_REMEMBERED_EXPERIMENTS = 10000
_batch_seq_of = {}  # experiment id -> its first batch sequence number: set at registration, never changed


def _batch_seqs(experiment_ids):
    """{experiment id: first batch sequence number} for batchesListIndex; one read for those not known yet."""
    missing = [e for e in set(experiment_ids) if e not in _batch_seq_of and ObjectId.is_valid(e)]
    if missing:
        if len(_batch_seq_of) + len(missing) > MAX_REMEMBERED_EXPERIMENTS:
            _batch_seq_of.clear()
        for experiment in db()[EXPERIMENTS].find({'_id': {'$in': [ObjectId(e) for e in missing]}}, {'batchSeq': 1}):
            if isinstance(experiment.get('batchSeq'), int):
                _batch_seq_of[str(experiment['_id'])] = experiment['batchSeq']
    return {e: _batch_seq_of.get(e) for e in experiment_ids}


def _batches_json(docs):
    seqs = _batch_seqs([doc.get('experimentId') for doc in docs if isinstance(doc.get('experimentId'), str)])
    return [batch_json(doc, seqs.get(doc.get('experimentId'))) for doc in docs]


def _find_batch(batch_id, projection=None):
    doc = find_visible(db()[BATCHES], object_id(batch_id, 'batch id'), projection)
    if doc is None:
        raise not_found('batch')
    return doc


def _seq_range(query):
    """The sequence numbers the batches of the experiment named in the query have (None: no experiment named)."""
    if not isinstance(query.get('experimentId'), str):
        return None
    experiment = db()[EXPERIMENTS].find_one({'_id': ObjectId(query['experimentId'])}, {'batchSeq': 1, 'batchCount': 1})
    if experiment is None:
        return 1, 0  # none
    return experiment['batchSeq'], experiment['batchSeq'] + experiment['batchCount'] - 1


@blueprint.get('/batches')
@requires_auth
def list_batches():
    query = list_filter(FILTERS)
    with_timeline = bool_arg('timeline')
    page = find_page(db()[BATCHES], query, TIMELINE_WITHOUT if with_timeline else LIST_WITHOUT,
                     _seq_range(query))
    if with_timeline:
        for doc in page:
            doc['timeline'] = _timeline(doc.pop('history', None) or [])
    return jsonify(_batches_json(page))


def _timeline(history):
    """A batch's history without its debugInfo and agent reports: when it was in which state on which node, which
    is what a plot of the batches over time needs (a history entry may be large; this is a few numbers)."""
    return [{field: entry.get(field) for field in TIMELINE_FIELDS} for entry in history]


@blueprint.get('/batches/count')
@requires_auth
def count_batches():
    query = list_filter(FILTERS)
    if 'node' in query:  # nodes are not counted per experiment
        return jsonify({'count': db()[BATCHES].count_documents(query)})
    experiments = {field: query[field] for field in ('username',) if field in query}
    if 'experimentId' in query:
        experiments['_id'] = ObjectId(query['experimentId'])
    return jsonify({'count': batch_counts.total(db(), experiments, query.get('state'))})


@blueprint.get('/batches/<batch_id>')
@requires_auth
def get_batch(batch_id):
    return jsonify(_batches_json([_find_batch(batch_id)])[0])


@blueprint.delete('/batches/<batch_id>')
@requires_auth
def cancel_batch(batch_id):
    for _ in range(CANCEL_TRIES):  # the controller may move the batch between our read and our write
        batch = _find_batch(batch_id, {'state': 1, 'node': 1, 'experimentId': 1, 'inputs': 1, 'outputs': 1})
        if batch['state'] in TERMINAL_STATES:
            raise ApiError(409, 'batch is already {}'.format(batch['state']))
        if BatchLifecycle(db()).cancel(batch):
            broker().waker.wake()
            return jsonify(_batches_json([_find_batch(batch_id)])[0])
    raise ApiError(409, 'batch is changing state, try again')


def _output(batch_id, stream):
    batch = _find_batch(batch_id, {'_id': 1})  # the owner's batch, or 404: another user's output is never read
    found = batch_output.open_stream(db(), batch['_id'], stream)
    if found is None:
        raise not_found('{} of this batch (it has not run yet)'.format(stream))
    pieces, headers = found
    return Response(stream_with_context(pieces), mimetype='text/plain', headers=headers)


@blueprint.get('/batches/<batch_id>/stdout')
@requires_auth
def batch_stdout(batch_id):
    return _output(batch_id, 'stdout')


@blueprint.get('/batches/<batch_id>/stderr')
@requires_auth
def batch_stderr(batch_id):
    return _output(batch_id, 'stderr')
