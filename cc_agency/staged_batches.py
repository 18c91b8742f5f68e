"""Batches whose documents are still in their staged chunk: found by id, listed and cancelled like the others.

Why: inserting one document per batch is what registration costs (SecantusDB, the embedded default, writes each
document and each of its index entries on its own: about 600 batches/s while batches run). So the registrar
inserts a large experiment's chunks only as its queue needs them (cc_agency.registration.LOOKAHEAD), as Slurm keeps
a job array as one record and splits a task's record off when it starts. Until then a batch is its document in a
chunk, possibly for hours, and no reader may tell the difference: its counts are kept with the others
(cc_agency.batch_counts), and every read of the batches that a user makes comes here too.

A chunk's binary always holds the current documents of its batches: a cancel rewrites the chunk (compare-and-set on
its `version`, and only while no registrar has claimed it), with the batch cancelled and its secrets voided as the
life cycle would (cc_agency.transitions.transition_update), and the registrar then inserts that chunk at once, so
that the notification of the cancelled batch goes out.

A read of a range of sequence numbers reads the chunks first, then the inserted batches, and a batch that both gave
is taken from the collection. A registrar claims a chunk before it inserts any of its batches, a chunk is deleted
only once all are in, and a claim is never taken back (cc_agency.registration): so a batch that moves from its
chunk to the collection meanwhile is in one read or the other, never missing from a list and never in it twice. Of
a chunk that was claimed already when it was read, the batches inserted by then are left out, so that a chunk
whose insert broke off does not show old copies of batches that have run since.
"""
import struct

import bson
from bson import Binary, ObjectId

from cc_agency.batch_counts import COUNTS, QUEUED, STAGED
from cc_agency.db import BATCHES, EXPERIMENTS, HISTORY_LIMIT, PENDING_BATCHES, SEQ
from cc_agency.registration import ENDED_CHUNKS, chunk_batches
from cc_agency.states import CANCELLED, REGISTERED
from cc_agency.transitions import transition_update

STAGED_STATES = (REGISTERED, CANCELLED)  # the states a batch can have in its chunk
CANCELLED_COUNT = '{}.{}'.format(COUNTS, CANCELLED)
CURSOR_BATCH = 2  # chunks a range read fetches at a time: it stops at the first beyond the range
MAX_REMEMBERED_EXPERIMENTS = 10000
_LENGTH = struct.Struct('<i')  # what a BSON document starts with
_committed_ids = set()


def matches(doc, query):
    """Whether a batch document matches a list's filter, whose values are all plain equalities (pure)."""
    return all(doc.get(field) == value for field, value in query.items())


def cancelled_copy(doc, debug_info):
    """The document of a registered batch as the life cycle's cancel leaves it (pure)."""
    update = transition_update(doc, CANCELLED, debug_info=[debug_info])
    copy = dict(doc, **update['$set'])
    copy['history'] = ((doc.get('history') or []) + update['$push']['history']['$each'])[-HISTORY_LIMIT:]
    return copy


def _seq_slice(chunk, first, last):
    """The BSON of the chunk's batches with sequence numbers first..last. Its batches are consecutive, in order, and
    a BSON document starts with its length: so only those are cut out, not all of the chunk's (a page of 100 from a
    chunk of 1,000 took 4.5 ms to split it whole)."""
    blob = chunk['batches']
    offsets = [0]
    while offsets[-1] < len(blob):
        offsets.append(offsets[-1] + _LENGTH.unpack_from(blob, offsets[-1])[0])
    if len(offsets) - 1 != chunk['lastSeq'] - chunk['firstSeq'] + 1:  # not as staged: find them by their numbers
        return [raw.raw for raw in chunk_batches(chunk) if first <= raw[SEQ] <= last]
    low, high = max(first, chunk['firstSeq']) - chunk['firstSeq'], min(last, chunk['lastSeq']) - chunk['firstSeq']
    return [blob[offsets[index]:offsets[index + 1]] for index in range(low, high + 1)]


def _committed(db, chunks):
    """The chunks whose experiment exists: those of a registration that broke off are nobody's batches. An
    experiment found once stays committed (remembered per process)."""
    unknown = list({chunk['experimentId'] for chunk in chunks} - _committed_ids)
    if unknown:
        if len(_committed_ids) + len(unknown) > MAX_REMEMBERED_EXPERIMENTS:
            _committed_ids.clear()
        _committed_ids.update(doc['_id'] for doc in db[EXPERIMENTS].find({'_id': {'$in': unknown}}, {'_id': 1}))
    return [chunk for chunk in chunks if chunk['experimentId'] in _committed_ids]


def _chunks(db, bound, keep, order=None, past=None):
    """The committed chunks that match the one-field query `bound` and that `keep(chunk)` accepts, in order of their
    sequence numbers. With `order`, they are read in that order until `past(chunk)`. One condition, the others
    here: SecantusDB takes 50-150 ms for a query with two range conditions on 100 chunks, 3-7 ms for one."""
    found = []
    with db[PENDING_BATCHES].find(bound, sort=order, batch_size=CURSOR_BATCH) as cursor:
        for chunk in cursor:
            if past is not None and past(chunk):
                break
            if keep(chunk):
                found.append(chunk)
    return _committed(db, sorted(found, key=lambda chunk: chunk.get('firstSeq', 0)))


def find_batch(db, batch_id):
    """(document, chunk id) of the staged batch `batch_id` (an ObjectId), or None. Led by the second of the id,
    which the chunks index: a batch id that no chunk holds costs one index lookup."""
    second = int(batch_id.generation_time.timestamp())
    for chunk in _chunks(db, {'idTimes': second}, lambda chunk: chunk['firstId'] <= batch_id <= chunk['lastId']):
        for raw in chunk_batches(chunk):
            if raw['_id'] == batch_id:
                return bson.decode(raw.raw), chunk['_id']
    return None


def chunks_in_range(db, query, first, last, ascending=True):
    """The committed chunks that may hold batches matching the list filter `query` with sequence numbers in
    first..last, read from the end a read starts from, up to the range's far end (chunks hold disjoint ranges)."""
    if isinstance(query.get('node'), str) or query.get('state', REGISTERED) not in STAGED_STATES:
        return []  # a staged batch is on no node, and registered or cancelled
    username = query.get('username') if isinstance(query.get('username'), str) else None
    experiment_id = ObjectId(query['experimentId']) if isinstance(query.get('experimentId'), str) else None

    def keep(chunk):
        return username in (None, chunk['username']) and experiment_id in (None, chunk['experimentId'])
    if ascending:
        return _chunks(db, {'firstSeq': {'$lte': last}}, keep, [('firstSeq', -1)],
                       lambda chunk: chunk['lastSeq'] < first)
    return _chunks(db, {'lastSeq': {'$gte': first}}, keep, [('lastSeq', 1)], lambda chunk: chunk['firstSeq'] > last)


def batches_in(db, chunks, query, first, last):
    """The batches of `chunks` with sequence numbers in first..last that match `query`, in order. Of a chunk that
    was claimed when it was read, those inserted already are left out: the collection, read after this, has them
    (see `merged`)."""
    found = []
    for chunk in chunks:
        docs = [doc for doc in map(bson.decode, _seq_slice(chunk, first, last)) if matches(doc, query)]
        if docs and chunk.get('claimedAt') is not None:
            inserted = _inserted_seqs(db, max(first, chunk['firstSeq']), min(last, chunk['lastSeq']))
            docs = [doc for doc in docs if doc[SEQ] not in inserted]
        found.extend(docs)
    return sorted(found, key=lambda doc: doc[SEQ])


def merged(inserted, staged):
    """The batches read from the collection and, of those read from chunks before, the ones it did not give: a
    chunk unclaimed when it was read had none of its batches in the collection, so a batch that moved since is
    given by the collection, and only once (pure)."""
    seen = {doc[SEQ] for doc in inserted}
    return inserted + [doc for doc in staged if doc[SEQ] not in seen]


def _inserted_seqs(db, low, high):
    """The sequence numbers low..high of batches in the collection (a chunk's range holds no other batches)."""
    return {batch[SEQ] for batch in db[BATCHES].find({SEQ: {'$gte': low, '$lte': high}}, {SEQ: 1})}


def range_reader(db, query, ascending):
    """The `extra` of cc_agency.seq_order.read_in_order for lists of batches: each range is read with the staged
    batches it holds merged in (the chunks first, then the collection)."""
    def read_range(first, last, skip, take, read_collection):
        chunks = chunks_in_range(db, query, first, last, ascending)
        if not chunks:
            return read_collection(first, last, skip, take)
        staged = batches_in(db, chunks, query, first, last)
        _, docs = read_collection(first, last, 0, skip + take)
        docs = sorted(merged(docs, staged), key=lambda doc: doc[SEQ], reverse=not ascending)
        # a count below what the range holds only when the page is full, and then nothing is left to skip
        return len(docs), docs[skip:skip + take]
    return read_range


def of_experiment(db, experiment, query):
    """The staged batches of an experiment document (with batchSeq and batchCount) that match `query`; read them
    before the collection and merge with `merged`."""
    query = dict(query, experimentId=str(experiment['_id']))
    first, last = experiment['batchSeq'], experiment['batchSeq'] + experiment['batchCount'] - 1
    chunks = chunks_in_range(db, query, first, last)
    return batches_in(db, chunks, query, first, last) if chunks else []


def cancel(db, experiment_id, seqs=None, debug_info='cancelled by user'):
    """Cancel the staged batches of an experiment (those with sequence numbers `seqs`, or all) that are registered.

    Returns (how many this call cancelled, whether some chunk could not be rewritten: a registrar is inserting it,
    or another cancel rewrote it meanwhile; its batches are then cancelled in the collection once they are in)."""
    low, high = (min(seqs), max(seqs)) if seqs is not None else (None, None)
    def keep(chunk):  # a chunk staged by an earlier version has no range: it is read whole
        return seqs is None or (chunk.get('firstSeq', low) <= high and chunk.get('lastSeq', high) >= low)
    chunks = _chunks(db, {'experimentId': ObjectId(experiment_id)}, keep)
    cancelled, busy = 0, False
    for chunk in chunks:
        if chunk.get('claimedAt') is not None:  # a registrar is inserting it, or one failed to
            busy = True
            continue
        blobs, count = [], 0
        for raw in chunk_batches(chunk):
            if (seqs is None or raw[SEQ] in seqs) and raw['state'] == REGISTERED:
                blobs.append(bson.encode(cancelled_copy(bson.decode(raw.raw), debug_info)))
                count += 1
            else:
                blobs.append(raw.raw)
        if not count:
            continue
        rewritten = db[PENDING_BATCHES].update_one(
            {'_id': chunk['_id'], 'claimedAt': None, 'version': chunk.get('version')},
            {'$set': {'batches': Binary(b''.join(blobs))}, '$inc': {'version': 1}}).modified_count
        if not rewritten:
            busy = True
            continue
        _count_cancelled(db, chunk['experimentId'], chunk['_id'], count)
        cancelled += count
    return cancelled, busy


def _count_cancelled(db, experiment_oid, chunk_id, count):
    """`count` staged batches of the chunk were cancelled: counted so, and the chunk is due for insertion. If the
    registrar counted the chunk's batches as queued meanwhile (it inserted the rewritten chunk), from the queue."""
    staged_key = '{}.{}'.format(STAGED, chunk_id)
    if db[EXPERIMENTS].update_one({'_id': experiment_oid, staged_key: {'$exists': True}}, {
            '$inc': {staged_key: -count, CANCELLED_COUNT: count},
            '$addToSet': {ENDED_CHUNKS: chunk_id}}).modified_count:
        return
    db[EXPERIMENTS].update_one({'_id': experiment_oid}, {'$inc': {QUEUED: -count, CANCELLED_COUNT: count}})


def count_staged(db, experiment_id):
    """({state: n} of the experiment's staged batches that are not registered, {chunk id: how many registered}) of
    the batches still only in its chunks (for a recount, cc_agency.batch_counts.recount)."""
    states, registered = {}, {}
    for chunk in db[PENDING_BATCHES].find({'experimentId': ObjectId(experiment_id)}):
        registered[str(chunk['_id'])] = 0
        inserted = set()
        if chunk.get('claimedAt') is not None:  # a registrar may have inserted some of them
            inserted = _inserted_seqs(db, chunk['firstSeq'], chunk['lastSeq'])
        for raw in chunk_batches(chunk):
            if raw[SEQ] in inserted:
                continue
            if raw['state'] == REGISTERED:
                registered[str(chunk['_id'])] += 1
            else:
                states[raw['state']] = states.get(raw['state'], 0) + 1
    return states, registered
