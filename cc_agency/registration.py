"""Registering an experiment's batches: staged by the broker in a few large writes, inserted as the queue needs them.

Why: one document per batch is what the scheduler needs, but inserting them is the slow part of registering, and it
grows with the experiment: SecantusDB, the embedded default, writes each document and each of its index entries on
its own (at best about 2,000 batches/s, about 600/s while batches run). So the broker writes the batch documents in
chunks of up to CHUNK_BATCHES, one document each in `pending_batches`, then the experiment, whose `pendingChunks`
lists them: that insert is the commit point. From then on every batch is registered: counted, listed, found by id
and cancelled like the others while its document is still in its chunk (cc_agency.staged_batches). An experiment of
one chunk is inserted by the broker before it answers. Of a larger one, the controller's registrar inserts the next
chunk, in order, whenever fewer than LOOKAHEAD of the experiment's batches are queued in the collection, as Slurm
splits a job array's task records off as they start; a chunk that holds a cancelled batch is inserted at once, so
that its notification goes out. `registrationComplete` turns true with the last chunk.

A chunk holds its batch documents as one binary value, their BSON one after the other (as a mongodump file does):
the database stores and returns one value instead of a thousand nested documents, three times faster. Its batches
are inserted INSERT_DOCS at a time: SecantusDB holds a collection's write lock for a whole insert, and while it
inserts a thousand batches under load (seconds), every state change of a batch waits: scheduling passes took up
to 42 s while 100,000 batches were registered. A hundred at a time cost the insert nothing measurable.

Inserting a chunk is idempotent: the registrar claims it first (`claimedAt`; a cancel does not rewrite a claimed
chunk), its batch documents carry the `_id` the broker gave them, a second insert of one is refused as a duplicate
and ignored, and a chunk is deleted only once all its batches are in. A claim older than CLAIM_STALE_S is of a
registrar that died, and is taken over. So a crash at any point is repaired by inserting the chunk again. A chunk
holds the batches' secrets too: it is deleted as soon as its batches are in, and a cancel voids them in the chunk.
A chunk that was claimed once is never unclaimed again: `claimedAt` None means that none of its batches is in.

Chunks whose experiment was never written (the database failed during POST /red) are orphans: nobody's batches,
never shown, and the controller's janitor deletes them ORPHAN_AFTER_S after they were staged, far longer than any
request may take.
"""
import logging

import bson
import pymongo.errors
from bson import Binary, ObjectId
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

from cc_agency import loggable, transitions
from cc_agency.batch_counts import COUNTS, QUEUED, STAGED
from cc_agency.db import BATCHES, EXPERIMENTS, PENDING_BATCHES, SEQ, now
from cc_agency.states import REGISTERED

log = logging.getLogger(__name__)

CHUNK_BATCHES = 1000
LOOKAHEAD = CHUNK_BATCHES // 2  # the registrar inserts an experiment's next chunk once fewer of its batches are queued
INSERT_DOCS = 100
CHUNK_BYTES = 8 * 1024 * 1024  # a chunk document stays well inside MongoDB's 16 MB
MAX_BATCH_BYTES = 16 * 1024 * 1024 - 64 * 1024  # one batch alone in its chunk, with room for the chunk's fields
ORPHAN_AFTER_S = 300
CLAIM_STALE_S = 60  # a claim this old is of a registrar that died: another takes the chunk over
RELEASED = 0.0  # the claim of a chunk whose insert failed: stale at once (never None again, see `_release`)
ENDED_CHUNKS = 'endedChunks'  # field of an experiment: its staged chunks that hold an ended (cancelled) batch
CANCEL_REQUESTED = 'cancelRequested'  # field of an experiment: when DELETE /experiments/<id> cancelled it
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
    docs = [dict(doc, _id=ObjectId()) for doc in batch_docs]
    encoded = [bson.encode(doc) for doc in docs]
    for index, blob in enumerate(encoded):
        if len(blob) > MAX_BATCH_BYTES:
            raise BatchTooLarge(index)
    staged_at = now()
    bounds = chunk_bounds([len(blob) for blob in encoded])
    chunks = [dict(chunk_fields(experiment, docs[start:end]), _id=ObjectId(), stagedAt=staged_at,
                   batches=Binary(b''.join(encoded[start:end])))
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


def chunk_fields(experiment, docs):
    """What a chunk tells about the batches it holds, so that they are found without decoding it
    (cc_agency.staged_batches): their owner, the range of their sequence numbers (consecutive, in order), the range
    of their ids and the distinct seconds of those ids (indexed: a batch id leads to the chunks staged in its
    second). `version` counts the chunk's rewrites, `claimedAt` is set by the registrar inserting it (pure)."""
    ids = [doc['_id'] for doc in docs]
    return {'experimentId': experiment['_id'], 'username': experiment['username'],
            'firstSeq': docs[0][SEQ], 'lastSeq': docs[-1][SEQ], 'firstId': min(ids), 'lastId': max(ids),
            'idTimes': sorted({int(oid.generation_time.timestamp()) for oid in ids}), 'version': 0, 'claimedAt': None}


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
    """The chunk's batches are in: those still registered count as queued instead of staged (cc_agency.batch_counts),
    and the chunk leaves the experiment's lists, in one write that only the first call makes (idempotent). A
    compare-and-set on the staged count, which a cancel may lower meanwhile (cc_agency.staged_batches). Returns how
    many batches it moved to the queue."""
    staged_key = '{}.{}'.format(STAGED, chunk_id)
    while True:
        experiment = db[EXPERIMENTS].find_one({'_id': experiment_id}, {staged_key: 1})
        count = ((experiment or {}).get(STAGED) or {}).get(str(chunk_id))
        if count is None:
            return 0
        if db[EXPERIMENTS].update_one({'_id': experiment_id, staged_key: count}, {
                '$unset': {staged_key: ''}, '$inc': {QUEUED: count},
                '$pull': {'pendingChunks': chunk_id, ENDED_CHUNKS: chunk_id}}).modified_count:
            return count


def _insert_new(db, batches):
    """Insert the batches, ignoring those inserted already (by an earlier or a concurrent registration)."""
    try:
        db[BATCHES].insert_many(batches, ordered=False)
    except pymongo.errors.BulkWriteError as e:
        if e.details.get('writeConcernErrors') or \
                any(error.get('code') != DUPLICATE_KEY for error in e.details.get('writeErrors', [])):
            raise


def claim(db, chunk_id):
    """The chunk, claimed for inserting it; None when it is gone or another registrar holds it. While claimed, a
    chunk is not rewritten (a cancel waits for its batches to be in). Two plain updates, not one with `$or`:
    SecantusDB's planner scans the whole collection for that one."""
    claimed_at = now()
    for holder in (None, {'$lt': claimed_at - CLAIM_STALE_S}):
        if db[PENDING_BATCHES].update_one({'_id': chunk_id, 'claimedAt': holder},
                                          {'$set': {'claimedAt': claimed_at}}).modified_count:
            return db[PENDING_BATCHES].find_one({'_id': chunk_id})
    return None


def register_chunk(db, experiment_id, chunk_id):
    """Insert one chunk's batches and delete it; returns how many of them are queued now, or None when another
    registrar is inserting it."""
    chunk = claim(db, chunk_id)
    if chunk is None:
        if db[PENDING_BATCHES].count_documents({'_id': chunk_id}, limit=1):
            return None
        return _registered(db, experiment_id, chunk_id)  # inserted already (its count may still be staged)
    try:
        batches = chunk_batches(chunk)
        for start in range(0, len(batches), INSERT_DOCS):
            _insert_new(db, batches[start:start + INSERT_DOCS])
    except Exception:
        _release(db, chunk)
        raise
    db[PENDING_BATCHES].delete_one({'_id': chunk_id})
    return _registered(db, experiment_id, chunk_id)


def _release(db, chunk):
    """Give a claimed chunk back after a failed insert, so that the next registrar need not wait for the claim to
    go stale (best effort: when the database fails, it does go stale). The claim is made stale, not removed: some
    of the chunk's batches may be in the collection, and readers and cancels take a chunk that was never claimed
    for one that holds all its batches alone (cc_agency.staged_batches)."""
    try:
        db[PENDING_BATCHES].update_one({'_id': chunk['_id'], 'claimedAt': chunk['claimedAt']},
                                       {'$set': {'claimedAt': RELEASED}})
    except pymongo.errors.PyMongoError:
        pass


def register(db, experiment_id, chunk_ids, on_chunk=None, lookahead=None):
    """Insert the batches of the staged chunks `chunk_ids` (the experiment's, in order), delete each; once none is
    left, mark the experiment complete. Returns whether it is.

    With a `lookahead`, a chunk is inserted only while fewer than that many batches of the experiment are queued,
    or when it holds an ended batch (its notification is due; see the module's docstring). Safe to repeat and to
    run twice at once. `on_chunk(experiment_id)` is called after each chunk.
    """
    experiment = db[EXPERIMENTS].find_one({'_id': experiment_id}, {QUEUED: 1, ENDED_CHUNKS: 1})
    if experiment is None:
        return False
    queued = ((experiment.get(COUNTS) or {}).get(REGISTERED)) or 0
    ended = set(experiment.get(ENDED_CHUNKS) or ())
    waiting, others = False, []
    for chunk_id in chunk_ids:
        if lookahead is not None and queued >= lookahead and chunk_id not in ended:
            waiting = True
            continue
        moved = register_chunk(db, experiment_id, chunk_id)
        if moved is None:  # another registrar is inserting it
            others.append(chunk_id)
            continue
        queued += moved
        flags = db[EXPERIMENTS].find_one({'_id': experiment_id}, {CANCEL_REQUESTED: 1}) if moved else None
        if CANCEL_REQUESTED in (flags or {}):
            # cancelled while this chunk was being inserted: its batches are cancelled as the others were
            transitions.BatchLifecycle(db).cancel_experiment(str(experiment_id))
        if on_chunk is not None:
            on_chunk(experiment_id)
    # asked only when no chunk waits for the queue: SecantusDB copies every chunk it counts, and this runs each round
    if waiting or db[PENDING_BATCHES].count_documents({'experimentId': experiment_id}, limit=1):
        return False
    for chunk_id in others:  # in now: their counts move to the queue before the staged counts are dropped
        _registered(db, experiment_id, chunk_id)
    db[EXPERIMENTS].update_one({'_id': experiment_id}, {'$set': {'registrationComplete': True},
                                                        '$unset': {'pendingChunks': '', STAGED: '', ENDED_CHUNKS: ''}})
    # batches may all have ended while the last ones were being inserted (after a crash): then this is the moment
    transitions.void_experiment_secrets_if_done(db, str(experiment_id))
    return True


def register_pending(db, on_chunk=None, lookahead=LOOKAHEAD):
    """Insert what the queues of the registrations under way need (see `register`), oldest first; returns how many
    registrations were finished."""
    unfinished = list(db[EXPERIMENTS].find({'registrationComplete': False}, {'pendingChunks': 1}).sort(SEQ, 1))
    finished = 0
    for experiment in unfinished:
        try:
            complete = register(db, experiment['_id'], experiment.get('pendingChunks', []), on_chunk, lookahead)
        except pymongo.errors.ConnectionFailure:
            raise
        except Exception as e:  # one bad document must not hold up the registrations after it
            # the error's type and codes only: a BulkWriteError's text holds the batches, with their credentials
            log.error('experiment %s: registering its batches failed, retried later (%s)', experiment['_id'],
                      loggable.describe(e))
            continue
        if complete:
            log.info('experiment %s: all its batches are inserted', experiment['_id'])
            finished += 1
    return finished


def register_legacy(db, on_chunk=None):
    """Insert at once the chunks that an earlier version staged: they lack what readers find staged batches by
    (chunk_fields), so only inserted are their batches listed. Run once per controller start (an upgrade restarts
    it); returns how many registrations were finished."""
    finished = 0
    for experiment_id in db[PENDING_BATCHES].distinct('experimentId', {'idTimes': {'$exists': False}}):
        experiment = db[EXPERIMENTS].find_one({'_id': experiment_id}, {'pendingChunks': 1})
        if experiment is not None and register(db, experiment_id, experiment.get('pendingChunks', []), on_chunk):
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
