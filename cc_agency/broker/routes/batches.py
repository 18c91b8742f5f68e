"""GET /batches, /batches/count, /batches/<id>, its stdout and stderr; DELETE /batches/<id> cancels it.

Each reads and cancels the batches still in their staged chunks too (cc_agency/staged_batches.py): a batch is
registered from the answer of POST /red on, whether its document is in the collection yet or not.

stdout and stderr are streamed from GridFS piece by piece (cc_agency/batch_output.py), so a large output costs the
broker one GridFS chunk of memory at a time (a small one is in the output document); only the batch's owner (or an
admin) gets them.
"""
import time

from bson import ObjectId
from flask import Blueprint, Response, jsonify, stream_with_context

from cc_agency import batch_counts, batch_output, staged_batches
from cc_agency.broker.context import bool_arg, broker, db, find_visible, object_id, requires_auth, visible
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
STAGED_CANCEL_WAIT_S = 15  # how long a cancel waits for a registrar that is inserting the batch's chunk
STAGED_CANCEL_POLL_S = 0.2
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
    """The batch, inserted or staged, if the user may see it, else 404; with the id of the chunk it is staged in
    (None: it is in the batches collection)."""
    oid = object_id(batch_id, 'batch id')
    doc = find_visible(db()[BATCHES], oid, projection)
    if doc is not None:
        return doc, None
    staged = staged_batches.find_batch(db(), oid)
    if staged is not None and visible(staged[0]):
        return staged
    doc = find_visible(db()[BATCHES], oid, projection)  # inserted while its chunk was read
    if doc is None:
        raise not_found('batch')
    return doc, None


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
                     _seq_range(query), lambda query, ascending: staged_batches.range_reader(db(), query, ascending))
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
    return jsonify(_batches_json([_find_batch(batch_id)[0]])[0])


@blueprint.delete('/batches/<batch_id>')
@requires_auth
def cancel_batch(batch_id):
    deadline = time.monotonic() + STAGED_CANCEL_WAIT_S
    tries = 0
    while tries < CANCEL_TRIES:  # the controller may move the batch between our read and our write
        batch, chunk_id = _find_batch(batch_id, {'state': 1, 'node': 1, 'experimentId': 1, 'inputs': 1, 'outputs': 1})
        if batch['state'] in TERMINAL_STATES:
            raise ApiError(409, 'batch is already {}'.format(batch['state']))
        if chunk_id is None:
            done = BatchLifecycle(db()).cancel(batch)
            tries += 1
        else:
            done = staged_batches.cancel(db(), batch['experimentId'], {batch['seq']})[0] == 1
            if not done:  # a registrar is inserting its chunk: it is in the collection within seconds
                if time.monotonic() > deadline:
                    break
                time.sleep(STAGED_CANCEL_POLL_S)
        if done:
            broker().waker.wake()
            return jsonify(_batches_json([_find_batch(batch_id)[0]])[0])
    raise ApiError(409, 'batch is changing state, try again')


def _output(batch_id, stream):
    batch, _ = _find_batch(batch_id, {'_id': 1})  # the owner's batch, or 404: another user's output is never read
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
