"""Registering an experiment's batches: staged by the broker in a few large writes, then inserted chunk by chunk.

Why: one document per batch is what the scheduler and the API need, but inserting them is the slow part of
POST /red, and it grows with the experiment (10,000 batches: seconds on a MongoDB-wire server that indexes every
document on its own). So the broker writes the batch documents in chunks of up to CHUNK_BATCHES, one document each
in `pending_batches`, then the experiment, whose `pendingChunks` lists them: that insert is the commit point.
An experiment of one chunk is registered by the broker before it answers; a larger one by the controller's
registrar, chunk by chunk, within seconds. Its batches can be listed and scheduled as they arrive, and its
`registrationComplete` turns true with the last chunk (as an array job's children appear after it is accepted).

A chunk holds its batch documents as one binary value, their BSON one after the other (as a mongodump file does):
the database stores and returns one value instead of a thousand nested documents, three times faster. Its batches
are inserted INSERT_DOCS at a time: SecantusDB holds a collection's write lock for a whole insert, and while it
inserts a thousand batches under load (seconds), every state change of a batch waits: scheduling passes took up
to 42 s while 100,000 batches were registered. A hundred at a time cost the insert nothing measurable.

Registering a chunk is idempotent: its batch documents carry the `_id` the broker gave them, a second insert of one
is refused as a duplicate and ignored, and a chunk is deleted only once all its batches are in. So a broker and a
controller may both register a chunk, and a crash at any point is repaired by registering it again. A chunk holds
the batches' secrets too: it is deleted as soon as its batches are in.

Chunks whose experiment was never written (the database failed during POST /red) are orphans: the controller's
janitor deletes them ORPHAN_AFTER_S after they were staged, far longer than any request may take.
"""
import logging

import bson
import pymongo.errors
from bson import Binary, ObjectId
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

from cc_agency import loggable, transitions
from cc_agency.batch_counts import QUEUED, STAGED
from cc_agency.db import BATCHES, EXPERIMENTS, PENDING_BATCHES, SEQ, now
from cc_agency.states import REGISTERED

log = logging.getLogger(__name__)

CHUNK_BATCHES = 1000
INSERT_DOCS = 100
CHUNK_BYTES = 8 * 1024 * 1024  # a chunk document stays well inside MongoDB's 16 MB
MAX_BATCH_BYTES = 16 * 1024 * 1024 - 64 * 1024  # one batch alone in its chunk, with room for the chunk's fields
ORPHAN_AFTER_S = 300
DUPLICATE_KEY = 11000
RAW = CodecOptions(document_class=RawBSONDocument)


def new_batch(experiment_id, seq, username, registration_time, batch, requirements):
    """The document of a batch as it enters the life cycle: registered, no attempt yet."""
    return {
        'experimentId': experiment_id,
        'seq': seq,
        'username': username,
        'registrationTime': registration_time,
        'state': REGISTERED,
        'node': None,
        'attempts': 0,
        'usedGPUs': None,
        'requirements': requirements,
        'history': [transitions.history_entry(REGISTERED, time=registration_time)],
        'inputs': batch['inputs'],
        'outputs': batch['outputs'],
    }


class BatchTooLarge(ValueError):
    """A batch document larger than a database document may be; `index` is its position in the RED."""

    def __init__(self, index):
        super().__init__('batch {} is larger than a database document may be (16 MB)'.format(index))
        self.index = index


def chunk_bounds(sizes, max_count=CHUNK_BATCHES, max_bytes=CHUNK_BYTES):
    """[(start, end)] of consecutive chunks of documents with these encoded sizes: each holds at most `max_count`
    documents and `max_bytes` (unless one document alone is larger). Pure."""
    bounds = []
    start, total = 0, 0
    for index, size in enumerate(sizes):
        if index > start and (index - start == max_count or total + size > max_bytes):
            bounds.append((start, index))
            start, total = index, 0
        total += size
    if start < len(sizes):
        bounds.append((start, len(sizes)))
    return bounds


def stage(db, experiment, batch_docs):
    """Write the batch documents as chunks, then the experiment, which commits the registration.

    Every batch document gets its `_id` here. Raises BatchTooLarge before any write; on a database error, removes what
    it can of what it wrote (see `discard`) and raises. Returns the chunk ids, in order.
    """
    encoded = [bson.encode(dict(doc, _id=ObjectId())) for doc in batch_docs]
    for index, blob in enumerate(encoded):
        if len(blob) > MAX_BATCH_BYTES:
            raise BatchTooLarge(index)
    staged_at = now()
    bounds = chunk_bounds([len(blob) for blob in encoded])
    chunks = [{'_id': ObjectId(), 'experimentId': experiment['_id'], 'stagedAt': staged_at,
               'batches': Binary(b''.join(encoded[start:end]))}
              for start, end in bounds]
    chunk_ids = [chunk['_id'] for chunk in chunks]
    try:
        for chunk in chunks:
            db[PENDING_BATCHES].insert_one(chunk)
        db[EXPERIMENTS].insert_one(dict(experiment, registrationComplete=False, pendingChunks=chunk_ids, **{
            STAGED: {str(chunk['_id']): end - start for chunk, (start, end) in zip(chunks, bounds)}}))
    except Exception:
        discard(db, experiment['_id'], chunk_ids)
        raise
    return chunk_ids


def chunk_batches(chunk):
    """The batch documents a staged chunk holds, as they are to be inserted (raw BSON, never decoded here)."""
    return bson.decode_all(chunk['batches'], RAW)


def discard(db, experiment_id, chunk_ids):
    """Best effort after a failed `stage`: the experiment first (while it exists, its chunks are its batches), then
    the chunks. What stays is removed by `remove_orphans`."""
    try:
        db[EXPERIMENTS].delete_one({'_id': experiment_id})
        db[PENDING_BATCHES].delete_many({'_id': {'$in': chunk_ids}})
    except pymongo.errors.PyMongoError:
        log.warning('experiment %s: its staged batches stay until the controller removes them', experiment_id)


def _registered(db, experiment_id, chunk_id):
    """The chunk's batches are in: they count as queued instead of staged (cc_agency.batch_counts), in one write
    that only the first call makes (idempotent)."""
    staged_key = '{}.{}'.format(STAGED, chunk_id)
    experiment = db[EXPERIMENTS].find_one({'_id': experiment_id}, {staged_key: 1})
    count = ((experiment or {}).get(STAGED) or {}).get(str(chunk_id))
    if count is not None:
        db[EXPERIMENTS].update_one({'_id': experiment_id, staged_key: count},
                                   {'$unset': {staged_key: ''}, '$inc': {QUEUED: count}})


def _insert_new(db, batches):
    """Insert the batches, ignoring those inserted already (by an earlier or a concurrent registration)."""
    try:
        db[BATCHES].insert_many(batches, ordered=False)
    except pymongo.errors.BulkWriteError as e:
        if e.details.get('writeConcernErrors') or \
                any(error.get('code') != DUPLICATE_KEY for error in e.details.get('writeErrors', [])):
            raise


def register(db, experiment_id, chunk_ids, on_chunk=None):
    """Insert the batches of each chunk still staged, delete the chunk, then mark the experiment complete.

    Safe to repeat and to run twice at once (see the module's docstring). `on_chunk()` is called after each chunk.
    """
    for chunk_id in chunk_ids:
        chunk = db[PENDING_BATCHES].find_one({'_id': chunk_id})
        if chunk is None:  # registered already (its count may still be staged if that process stopped here)
            _registered(db, experiment_id, chunk_id)
            continue
        batches = chunk_batches(chunk)
        for start in range(0, len(batches), INSERT_DOCS):
            _insert_new(db, batches[start:start + INSERT_DOCS])
        db[PENDING_BATCHES].delete_one({'_id': chunk_id})
        _registered(db, experiment_id, chunk_id)
        if on_chunk is not None:
            on_chunk()
    db[EXPERIMENTS].update_one({'_id': experiment_id},
                               {'$set': {'registrationComplete': True}, '$unset': {'pendingChunks': '', STAGED: ''}})
    # batches may all have ended while the last ones were being inserted (after a crash): then this is the moment
    transitions.void_experiment_secrets_if_done(db, str(experiment_id))


def register_pending(db, on_chunk=None):
    """Finish every registration still under way, oldest first; returns how many were finished."""
    unfinished = list(db[EXPERIMENTS].find({'registrationComplete': False}, {'pendingChunks': 1}).sort(SEQ, 1))
    finished = 0
    for experiment in unfinished:
        try:
            register(db, experiment['_id'], experiment.get('pendingChunks', []), on_chunk)
        except pymongo.errors.ConnectionFailure:
            raise
        except Exception as e:  # one bad document must not hold up the registrations after it
            # the error's type and codes only: a BulkWriteError's text holds the batches, with their credentials
            log.error('experiment %s: registering its batches failed, retried later (%s)', experiment['_id'],
                      loggable.describe(e))
            continue
        log.info('experiment %s: all its batches are registered', experiment['_id'])
        finished += 1
    return finished


def remove_orphans(db, older_than_s=ORPHAN_AFTER_S):
    """Delete chunks staged more than `older_than_s` ago whose experiment does not exist; returns how many."""
    old = list(db[PENDING_BATCHES].find({'stagedAt': {'$lt': now() - older_than_s}}, {'experimentId': 1}))
    if not old:
        return 0
    committed = {doc['_id'] for doc in db[EXPERIMENTS].find(
        {'_id': {'$in': list({chunk['experimentId'] for chunk in old})}}, {'_id': 1})}
    orphans = [chunk['_id'] for chunk in old if chunk['experimentId'] not in committed]
    if orphans:
        db[PENDING_BATCHES].delete_many({'_id': {'$in': orphans}})
        log.warning('removed %d staged batch chunks of registrations that broke off', len(orphans))
    return len(orphans)
