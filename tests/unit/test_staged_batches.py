"""What a staged batch looks like to readers and after a cancel (cc_agency.staged_batches, the pure part), and how
staged batches are counted (cc_agency.batch_counts.counts_from) and described by their chunk."""
import bson
import hypothesis
import hypothesis.strategies as st
from bson import ObjectId

from cc_agency import batch_counts, transitions
from cc_agency.db import HISTORY_LIMIT
from cc_agency.notifications import NOTIFY_MARKER
from cc_agency.registration import chunk_fields, new_batch
from cc_agency.staged_batches import _seq_slice, cancelled_copy, matches

REQUIREMENTS = {'ramMiB': 256, 'gpuVramMiB': []}
SECRET_BATCH = {'inputs': {'f': {'class': 'File', 'connector': {'command': 'c', 'access': {'password': 'pw'}}}},
                'outputs': {}}


def test_a_list_filter_matches_a_staged_batch_as_the_database_would():
    doc = new_batch('e1', 7, 'alice', 1.0, SECRET_BATCH, REQUIREMENTS)
    assert matches(doc, {}) and matches(doc, {'username': 'alice', 'state': 'registered', 'experimentId': 'e1'})
    assert not matches(doc, {'username': 'bob'}) and not matches(doc, {'state': 'scheduled'})
    assert not matches(doc, {'node': 'n1'})  # a staged batch is on no node


def test_a_staged_batch_is_cancelled_as_the_life_cycle_cancels_an_inserted_one():
    doc = dict(new_batch('e1', 7, 'alice', 1.0, SECRET_BATCH, REQUIREMENTS), _id=ObjectId())
    copy = cancelled_copy(doc, 'cancelled by user')
    update = transitions.transition_update(doc, 'cancelled', debug_info=['cancelled by user'])
    assert {key: copy[key] for key in update['$set']} == update['$set']
    assert copy['state'] == 'cancelled' and copy[NOTIFY_MARKER] is True and copy['node'] is None
    assert copy['inputs']['f']['connector']['access']['password'] is None  # voided
    assert [entry['state'] for entry in copy['history']] == ['registered', 'cancelled']
    assert copy['history'][-1]['debugInfo'] == ['cancelled by user']
    assert doc['state'] == 'registered' and doc['inputs'] == SECRET_BATCH['inputs']  # the original is unchanged
    long_history = dict(doc, history=[transitions.history_entry('registered')] * HISTORY_LIMIT)
    assert len(cancelled_copy(long_history, 'x')['history']) == HISTORY_LIMIT


def test_a_chunk_describes_its_batches_ids_and_numbers():
    ids = [ObjectId() for _ in range(3)]
    docs = [dict(new_batch('e1', 10 + i, 'alice', 1.0, SECRET_BATCH, REQUIREMENTS), _id=oid)
            for i, oid in enumerate(ids)]
    fields = chunk_fields({'_id': 'e1', 'username': 'alice'}, docs)
    assert (fields['firstSeq'], fields['lastSeq']) == (10, 12)
    assert fields['firstId'] == min(ids) and fields['lastId'] == max(ids)
    assert fields['idTimes'] == sorted({int(oid.generation_time.timestamp()) for oid in ids})
    assert fields['claimedAt'] is None and fields['version'] == 0 and fields['username'] == 'alice'
    assert bson.encode(fields)  # storable as it is


@hypothesis.given(st.integers(min_value=0, max_value=50), st.dictionaries(
    st.sampled_from(['scheduled', 'processing', 'succeeded', 'failed', 'cancelled']), st.integers(0, 50)),
    st.lists(st.integers(0, 1000), max_size=4))
def test_staged_batches_count_as_registered(queued, others, staged):
    staged_chunks = {str(i): n for i, n in enumerate(staged)}
    counts = batch_counts.counts_from(queued + sum(others.values()) + sum(staged),
                                      dict(others, registered=queued), staged_chunks)
    assert counts['registered'] == queued + sum(staged)
    assert all(counts[state] == n for state, n in others.items())
    # an experiment stored before its counters held `registered`: the rest of batchCount is queued or staged
    assert batch_counts.counts_from(queued + sum(others.values()) + sum(staged), others, staged_chunks) == counts


@hypothesis.given(st.integers(1, 30), st.integers(0, 40), st.integers(0, 40), st.booleans())
def test_a_range_of_a_chunk_is_cut_out_of_its_binary(count, first, last, rewritten):
    """A chunk's batches first..last, by their sequence numbers, also from a chunk whose binary is not as staged."""
    docs = [{'seq': 10 + index, 'word': 'w' * index} for index in range(count)]
    blobs = [bson.encode(doc) for doc in docs]
    chunk = {'firstSeq': 10, 'lastSeq': 9 + count, 'batches': bson.Binary(b''.join(blobs))}
    if rewritten:  # fewer documents than its range, in another order: found by the numbers themselves
        chunk['batches'] = bson.Binary(b''.join(blobs[:0:-1]))
        docs = docs[1:]
    got = [bson.decode(blob)['seq'] for blob in _seq_slice(chunk, first, last)]
    expected = [doc['seq'] for doc in docs if first <= doc['seq'] <= last]
    assert got == (expected[::-1] if rewritten else expected)
