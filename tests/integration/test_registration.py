"""Registration of an experiment's batches (cc_agency.registration, cc_agency.staged_batches) on a real MongoDB-wire
server: staged chunks are made into batch documents exactly once, whatever breaks off where; a large experiment is
answered at once, its batches are read and cancelled in their chunks like inserted ones, and the controller inserts
them as the queue needs them."""
import threading
import time

import bson
import pymongo.errors
import pytest
from bson import ObjectId

from cc_agency import batch_counts, registration, staged_batches, transitions
from cc_agency.broker.listing import split_query
from cc_agency.seq_order import read_in_order
from cc_agency.registration import new_batch
from cc_agency.db import BATCHES, EXPERIMENTS, PENDING_BATCHES, allocate_seq, ensure_indexes
from tests import reds

REQUIREMENTS = {'ramMiB': 256, 'gpuVramMiB': []}


def stage_experiment(db, count):
    """Stage an experiment of `count` batches as POST /red does; returns (experiment id, chunk ids, batch seqs)."""
    experiment_id, first = ObjectId(), allocate_seq(db, BATCHES, count)
    experiment = {'_id': experiment_id, 'username': 'u', 'registrationTime': 1.0, 'batchCount': count,
                  'seq': allocate_seq(db, EXPERIMENTS), 'batchSeq': first, 'requirements': REQUIREMENTS}
    batch = {'inputs': {'word': 'w', 'password': 'secret'}, 'outputs': {}}
    docs = [new_batch(str(experiment_id), first + i, 'u', 1.0, batch, REQUIREMENTS) for i in range(count)]
    chunk_ids = registration.stage(db, experiment, docs)
    return experiment_id, chunk_ids, list(range(first, first + count))


def assert_registered_once(db, experiment_id, seqs):
    batches = list(db[BATCHES].find({'experimentId': str(experiment_id)}, {'seq': 1, 'state': 1}))
    assert sorted(b['seq'] for b in batches) == seqs  # every batch, each once
    assert {b['state'] for b in batches} == {'registered'}
    experiment = db[EXPERIMENTS].find_one({'_id': experiment_id})
    assert experiment['registrationComplete'] is True and 'pendingChunks' not in experiment
    assert experiment['stateCounts']['registered'] == len(seqs)  # each counted once, in the queue
    assert db[PENDING_BATCHES].count_documents({}) == 0  # the staged copies (and their secrets) are gone


def test_staging_writes_chunks_and_the_experiment_last(mongo_db):
    ensure_indexes(mongo_db)
    experiment_id, chunk_ids, seqs = stage_experiment(mongo_db, 2500)
    assert len(chunk_ids) == 3
    chunks = {c['_id']: c for c in mongo_db[PENDING_BATCHES].find()}
    assert [len(registration.chunk_batches(chunks[i])) for i in chunk_ids] == [1000, 1000, 500]
    experiment = mongo_db[EXPERIMENTS].find_one({'_id': experiment_id})
    assert experiment['registrationComplete'] is False and experiment['pendingChunks'] == chunk_ids
    assert mongo_db[BATCHES].count_documents({}) == 0

    assert registration.register_pending(mongo_db, lookahead=None) == 1
    assert_registered_once(mongo_db, experiment_id, seqs)


def test_a_registration_broken_off_in_a_chunk_is_finished_with_each_batch_once(mongo_db):
    ensure_indexes(mongo_db)
    experiment_id, chunk_ids, seqs = stage_experiment(mongo_db, 2500)
    # a registrar died after the first chunk and 400 batches of the second, which it had claimed 10 minutes ago
    def batches_of(chunk_id):
        return registration.chunk_batches(mongo_db[PENDING_BATCHES].find_one({'_id': chunk_id}))
    mongo_db[BATCHES].insert_many(batches_of(chunk_ids[0]))
    mongo_db[PENDING_BATCHES].delete_one({'_id': chunk_ids[0]})
    mongo_db[PENDING_BATCHES].update_one({'_id': chunk_ids[1]}, {'$set': {'claimedAt': time.time() - 600}})
    mongo_db[BATCHES].insert_many(batches_of(chunk_ids[1])[:400])

    chunks_done = []
    assert registration.register_pending(mongo_db, on_chunk=chunks_done.append, lookahead=None) == 1
    assert chunks_done == [experiment_id] * 3  # the first chunk's count moved to the queue, the others inserted
    assert_registered_once(mongo_db, experiment_id, seqs)
    assert registration.register_pending(mongo_db) == 0  # nothing left to do


def test_two_registrars_at_once_insert_each_batch_once(mongo_db):
    ensure_indexes(mongo_db)
    experiment_id, chunk_ids, seqs = stage_experiment(mongo_db, 2500)
    errors = []

    def register():
        try:
            registration.register(mongo_db, experiment_id, chunk_ids)
        except Exception as e:  # reported below: the test fails with it
            errors.append(e)
    threads = [threading.Thread(target=register) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert_registered_once(mongo_db, experiment_id, seqs)


def test_a_bad_registration_does_not_hold_up_the_next(mongo_db):
    ensure_indexes(mongo_db)
    bad_id, bad_chunks, _ = stage_experiment(mongo_db, 3)
    mongo_db[PENDING_BATCHES].update_one({'_id': bad_chunks[0]}, {'$set': {'batches': b'not BSON'}})
    good_id, _, good_seqs = stage_experiment(mongo_db, 3)

    assert registration.register_pending(mongo_db) == 1
    assert mongo_db[EXPERIMENTS].find_one({'_id': good_id})['registrationComplete'] is True
    assert sorted(b['seq'] for b in mongo_db[BATCHES].find({'experimentId': str(good_id)})) == good_seqs
    assert mongo_db[EXPERIMENTS].find_one({'_id': bad_id})['registrationComplete'] is False  # tried again later


def test_only_chunks_of_experiments_never_written_are_removed_and_only_when_old(mongo_db):
    ensure_indexes(mongo_db)
    committed_id, _, _ = stage_experiment(mongo_db, 1500)
    orphan_id, orphan_chunks, _ = stage_experiment(mongo_db, 1500)
    mongo_db[EXPERIMENTS].delete_one({'_id': orphan_id})  # as if its insert had failed

    assert registration.remove_orphans(mongo_db) == 0  # staged just now: its request may still be under way
    assert registration.remove_orphans(mongo_db, older_than_s=0) == 2
    assert mongo_db[PENDING_BATCHES].count_documents({'experimentId': orphan_id}) == 0
    assert mongo_db[PENDING_BATCHES].count_documents({'experimentId': committed_id}) == 2


def secret_red(count):
    """A RED of `count` batches whose input connectors carry a password."""
    return reds.red([reds.batch('http://127.0.0.1:9', name='in{}.txt'.format(i),
                                access_extra={'auth': {'username': 'u', 'password': 'pw-{}'.format(i)}})
                     for i in range(count)])


def wait_until(condition, agency, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, agency.log('controller')[-3000:]
        time.sleep(0.1)


def test_a_large_experiment_is_registered_at_once_and_inserted_as_its_queue_needs(make_agency):
    agency = make_agency({})  # no node: the batches stay registered
    agency.create_user('alice', 'alice-pw')
    agency.create_user('bob', 'bob-pw')
    alice, bob = agency.session('alice', 'alice-pw'), agency.session('bob', 'bob-pw')
    agency.stop_controller()

    response = alice.post(agency.url + '/red', json=secret_red(2500), timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()['registrationComplete'] is False  # its batch documents are still in their chunks
    experiment_id = response.json()['experimentId']
    experiment = alice.get(agency.url + '/experiments/' + experiment_id, timeout=10).json()
    assert experiment['batchCount'] == 2500 and experiment['batchCounts']['registered'] == 2500
    assert 'pendingChunks' not in experiment and 'endedChunks' not in experiment
    # no controller yet: every batch is staged, and registered for every reader
    count = alice.get(agency.url + '/batches/count', params={'experimentId': experiment_id}, timeout=10).json()
    assert count == {'count': 2500}
    first = experiment['batchSeq']

    def page(**params):
        return alice.get(agency.url + '/batches', params=dict(params, experimentId=experiment_id), timeout=10).json()
    across = page(ascending='true', limit=1000, skip=500)  # the end of the first chunk and the second
    assert [b['seq'] for b in across] == list(range(first + 500, first + 1500))
    assert {b['state'] for b in across} == {'registered'}
    newest = page(state='registered', limit=100)
    assert [b['seq'] for b in newest] == list(range(first + 2499, first + 2399, -1))
    assert [b['batchesListIndex'] for b in newest[:2]] == [2499, 2498]
    batch_url = agency.url + '/batches/' + across[0]['_id']
    one = alice.get(batch_url, timeout=10).json()
    assert one['seq'] == first + 500 and one['state'] == 'registered'
    assert one['inputs']['infile']['connector']['access']['auth']['password'] == '********'
    assert bob.get(batch_url, timeout=10).status_code == 404  # another user's staged batch is not theirs to see
    assert bob.get(agency.url + '/batches/count', timeout=10).json() == {'count': 0}
    assert alice.get(batch_url + '/stdout', timeout=10).status_code == 404  # it has not run
    assert alice.get(agency.url + '/batches/' + str(ObjectId()), timeout=10).status_code == 404

    agency.start_controller()
    with agency.database() as db:
        # the registrar inserts the first chunk: then 1,000 are queued, as many as the queue needs ahead
        wait_until(lambda: db[PENDING_BATCHES].count_documents({}) == 2, agency)
        time.sleep(3)  # rounds of the registrar (woken at least every pass interval) insert no more
        assert db[PENDING_BATCHES].count_documents({}) == 2
        assert sorted(b['seq'] for b in db[BATCHES].find({}, {'seq': 1})) == list(range(first, first + 1000))
    assert page(ascending='true', limit=1000, skip=500) == across  # half inserted, half staged: the same page
    assert page(state='registered', limit=100) == newest
    assert alice.get(batch_url, timeout=10).json() == one
    count = alice.get(agency.url + '/batches/count', params={'experimentId': experiment_id}, timeout=10).json()
    assert count == {'count': 2500}
    assert alice.get(agency.url + '/experiments/' + experiment_id, timeout=10).json()['registrationComplete'] is False


def test_staged_batches_are_cancelled_in_their_chunk_and_then_inserted(make_agency):
    agency = make_agency({})
    agency.create_user('alice', 'alice-pw')
    agency.create_user('bob', 'bob-pw')
    alice, bob = agency.session('alice', 'alice-pw'), agency.session('bob', 'bob-pw')
    agency.stop_controller()
    experiment_id = alice.post(agency.url + '/red', json=secret_red(2500), timeout=60).json()['experimentId']
    first = alice.get(agency.url + '/experiments/' + experiment_id, timeout=10).json()['batchSeq']
    staged = alice.get(agency.url + '/batches', params={'experimentId': experiment_id, 'ascending': 'true',
                                                        'skip': 2100, 'limit': 1}, timeout=10).json()[0]
    assert staged['seq'] == first + 2100

    assert bob.delete(agency.url + '/batches/' + staged['_id'], timeout=30).status_code == 404
    response = alice.delete(agency.url + '/batches/' + staged['_id'], timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()['state'] == 'cancelled'
    assert alice.get(agency.url + '/batches/' + staged['_id'], timeout=10).json()['state'] == 'cancelled'
    assert alice.delete(agency.url + '/batches/' + staged['_id'], timeout=30).status_code == 409
    counts = alice.get(agency.url + '/experiments/' + experiment_id, timeout=10).json()['batchCounts']
    assert (counts['registered'], counts['cancelled']) == (2499, 1)
    cancelled = alice.get(agency.url + '/batches', params={'experimentId': experiment_id, 'state': 'cancelled'},
                          timeout=10).json()
    assert [b['_id'] for b in cancelled] == [staged['_id']]
    with agency.database() as db:
        chunk = db[PENDING_BATCHES].find_one({'firstSeq': {'$lte': first + 2100}, 'lastSeq': {'$gte': first + 2100}})
        doc = next(b for b in registration.chunk_batches(chunk) if b['seq'] == first + 2100)
        assert doc['inputs']['infile']['connector']['access']['auth']['password'] is None  # voided in the chunk
        assert [entry['state'] for entry in doc['history']] == ['registered', 'cancelled']
    resubmitted = alice.post(agency.url + '/experiments/{}/resubmit'.format(experiment_id),
                             params={'states': 'cancelled'}, json=secret_red(2500), timeout=60)
    assert resubmitted.status_code == 200, resubmitted.text
    assert resubmitted.json()['batchCount'] == 1  # the batch cancelled in its chunk
    [again] = alice.get(agency.url + '/batches', params={'experimentId': resubmitted.json()['experimentId']},
                        timeout=10).json()
    def url_of(batch_id):
        batch = alice.get(agency.url + '/batches/' + batch_id, timeout=10).json()
        return batch['inputs']['infile']['connector']['access']['url']
    assert url_of(again['_id']) == url_of(staged['_id']) and url_of(again['_id']).endswith('/in2100.txt')

    response = alice.delete(agency.url + '/experiments/' + experiment_id, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()['cancelled'] == 2499
    counts = alice.get(agency.url + '/experiments/' + experiment_id, timeout=10).json()['batchCounts']
    assert (counts['registered'], counts['cancelled']) == (0, 2500)
    assert alice.get(agency.url + '/batches/count', params={'state': 'registered', 'experimentId': experiment_id},
                     timeout=10).json() == {'count': 0}

    agency.start_controller()  # chunks that hold cancelled batches are inserted at once
    wait_until(lambda: alice.get(agency.url + '/experiments/' + experiment_id,
                                 timeout=10).json()['registrationComplete'], agency)
    with agency.database() as db:
        assert db[PENDING_BATCHES].count_documents({}) == 0
        batches = list(db[BATCHES].find({'experimentId': experiment_id}, {'seq': 1, 'state': 1, 'inputs': 1}))
        assert sorted(b['seq'] for b in batches) == list(range(first, first + 2500))
        assert {b['state'] for b in batches} == {'cancelled'}
        assert {b['inputs']['infile']['connector']['access']['auth']['password'] for b in batches} == {None}
    counts = alice.get(agency.url + '/experiments/' + experiment_id, timeout=10).json()['batchCounts']
    assert (counts['registered'], counts['cancelled']) == (0, 2500)


def test_registry_credentials_stay_until_the_last_batch_is_registered_and_ended(mongo_db):
    ensure_indexes(mongo_db)
    experiment_id, chunk_ids, _ = stage_experiment(mongo_db, 1500)
    auth = {'username': 'u', 'password': 'registry-secret'}
    mongo_db[EXPERIMENTS].update_one({'_id': experiment_id}, {'$set': {'container.settings.image.auth': auth}})
    # the first chunk is in and all its batches ended; the second chunk is still staged
    mongo_db[BATCHES].insert_many(registration.chunk_batches(mongo_db[PENDING_BATCHES].find_one({'_id': chunk_ids[0]})))
    mongo_db[PENDING_BATCHES].delete_one({'_id': chunk_ids[0]})
    mongo_db[BATCHES].update_many({}, {'$set': {'state': 'succeeded'}})

    def image_auth():
        return mongo_db[EXPERIMENTS].find_one({'_id': experiment_id})['container']['settings']['image']['auth']
    transitions.void_experiment_secrets_if_done(mongo_db, str(experiment_id))
    assert image_auth() == auth  # the staged batches still need it to pull the image

    assert registration.register_pending(mongo_db, lookahead=None) == 1
    assert image_auth() == auth  # 500 batches are registered now, not ended
    mongo_db[BATCHES].update_many({}, {'$set': {'state': 'failed'}})
    transitions.void_experiment_secrets_if_done(mongo_db, str(experiment_id))
    # the batches were changed behind the life cycle's back: their counters still say 1,500 are registered, and the
    # batches are not read while the counters say some have not ended; a recount (the controller's start) mends them
    assert image_auth() == auth
    batch_counts.recount(mongo_db, str(experiment_id))
    transitions.void_experiment_secrets_if_done(mongo_db, str(experiment_id))
    assert image_auth() == {'username': 'u', 'password': None}


def all_batches(db, experiment_id):
    """Every batch of the experiment as a reader must see it: inserted ones from the collection, the others from
    their chunks."""
    inserted = {b['seq']: b for b in db[BATCHES].find({'experimentId': str(experiment_id)})}
    for chunk in db[PENDING_BATCHES].find({'experimentId': experiment_id}):
        for raw in registration.chunk_batches(chunk):
            inserted.setdefault(raw['seq'], bson.decode(raw.raw))
    return [inserted[seq] for seq in sorted(inserted)]


def test_pages_of_inserted_and_staged_batches_are_those_of_all_batches(mongo_db):
    ensure_indexes(mongo_db)
    experiment_id, chunk_ids, seqs = stage_experiment(mongo_db, 2500)
    registration.register_chunk(mongo_db, experiment_id, chunk_ids[0])
    # some inserted batches moved on, some staged ones were cancelled, and a registrar is inserting the last chunk
    mongo_db[BATCHES].update_many({'seq': {'$in': seqs[10:20]}}, {'$set': {'state': 'scheduled', 'node': 'n1'}})
    staged_batches.cancel(mongo_db, str(experiment_id), set(seqs[1500:1510]))
    registration.claim(mongo_db, chunk_ids[2])
    mongo_db[BATCHES].insert_many(registration.chunk_batches(mongo_db[PENDING_BATCHES].find_one(
        {'_id': chunk_ids[2]}))[:200])
    truth = all_batches(mongo_db, experiment_id)
    assert [b['seq'] for b in truth] == seqs
    queries = [{}, {'state': 'registered'}, {'state': 'cancelled'}, {'state': 'scheduled'}, {'node': 'n1'},
               {'username': 'u'}, {'username': 'v'}, {'experimentId': str(experiment_id), 'state': 'registered'}]
    for query in queries:
        expected = [b for b in truth if all(b.get(k) == v for k, v in query.items())]
        lead, rest = split_query(query)
        for ascending in (True, False):
            ordered = expected if ascending else expected[::-1]
            for skip, limit in ((0, 100), (0, 1000), (990, 30), (1490, 40), (2450, 100), (0, 1)):
                page = read_in_order(mongo_db[BATCHES], lead, rest, seqs[0], seqs[-1], limit, skip, ascending,
                                     extra=staged_batches.range_reader(mongo_db, query, ascending))
                assert [(b['seq'], b['state']) for b in page] == \
                    [(b['seq'], b['state']) for b in ordered[skip:skip + limit]], (query, ascending, skip, limit)


def _page(db, query, first, last, limit, skip=0, ascending=False):
    lead, rest = split_query(query)
    return [b['seq'] for b in read_in_order(db[BATCHES], lead, rest, first, last, limit, skip, ascending,
                                             extra=staged_batches.range_reader(db, query, ascending))]


def test_pages_read_while_the_registrar_inserts_show_every_batch_once(mongo_db):
    """Pages read again and again while chunks move into the collection, a hundred batches at a time: each page is
    the batches it must be, none missing, none twice."""
    ensure_indexes(mongo_db)
    experiment_id, chunk_ids, seqs = stage_experiment(mongo_db, 4000)
    done = threading.Event()

    def registrar():
        try:
            registration.register(mongo_db, experiment_id, chunk_ids)
        finally:
            done.set()
    thread = threading.Thread(target=registrar)
    thread.start()
    pages = 0
    while not done.is_set() or pages < 3:
        for skip, limit, ascending in ((0, 100, False), (950, 100, False), (1950, 100, True), (0, 3000, True)):
            ordered = seqs if ascending else seqs[::-1]
            assert _page(mongo_db, {'state': 'registered'}, seqs[0], seqs[-1], limit, skip, ascending) == \
                ordered[skip:skip + limit], (skip, limit, ascending)
        pages += 1
    thread.join(60)
    assert_registered_once(mongo_db, experiment_id, seqs)
    assert pages > 3


def test_a_chunk_whose_insert_failed_half_way_is_never_read_as_whole(mongo_db):
    """The server refuses one batch of a chunk after others are in: the chunk stays claimed (stale, for the next
    registrar), so lists leave out the copies of batches that are in, and a cancel does not rewrite it."""
    ensure_indexes(mongo_db)
    experiment_id, [chunk_id], seqs = stage_experiment(mongo_db, 1000)
    chunk = mongo_db[PENDING_BATCHES].find_one({'_id': chunk_id})
    raws = [raw.raw for raw in registration.chunk_batches(chunk)]
    raws[150] = bson.encode(dict(bson.decode(raws[150]), _id={'$bad': 1}))  # not valid for storage: code 2
    mongo_db[PENDING_BATCHES].update_one({'_id': chunk_id}, {'$set': {'batches': bson.Binary(b''.join(raws))}})
    with pytest.raises(pymongo.errors.BulkWriteError):
        registration.register_chunk(mongo_db, experiment_id, chunk_id)
    assert mongo_db[BATCHES].count_documents({}) == 199  # the first hundred, then all of the second but one
    assert mongo_db[PENDING_BATCHES].find_one({'_id': chunk_id})['claimedAt'] == registration.RELEASED
    assert _page(mongo_db, {}, seqs[0], seqs[-1], 1000, ascending=True) == seqs
    assert _page(mongo_db, {'state': 'registered'}, seqs[0], seqs[-1], 300) == seqs[::-1][:300]
    mongo_db[BATCHES].update_many({'seq': {'$lt': seqs[100]}}, {'$set': {'state': 'succeeded'}})  # they ran since
    assert _page(mongo_db, {'state': 'registered'}, seqs[0], seqs[-1], 1000, ascending=True) == seqs[100:]
    assert staged_batches.cancel(mongo_db, str(experiment_id), {seqs[500]}) == (0, True)
    assert staged_batches.count_staged(mongo_db, str(experiment_id)) == ({}, {str(chunk_id): 801})


def test_a_recount_counts_the_staged_batches_once(mongo_db):
    ensure_indexes(mongo_db)
    experiment_id, chunk_ids, seqs = stage_experiment(mongo_db, 2500)
    registration.register_chunk(mongo_db, experiment_id, chunk_ids[0])
    staged_batches.cancel(mongo_db, str(experiment_id), {seqs[1200], seqs[2400]})
    registration.claim(mongo_db, chunk_ids[2])  # half inserted by a registrar that died
    mongo_db[BATCHES].insert_many(registration.chunk_batches(mongo_db[PENDING_BATCHES].find_one(
        {'_id': chunk_ids[2]}))[:250])
    mongo_db[EXPERIMENTS].update_one({'_id': experiment_id}, {'$set': {'stateCounts': {}, 'stagedChunks': {}}})

    assert batch_counts.recount_unfinished(mongo_db) == 1
    experiment = mongo_db[EXPERIMENTS].find_one({'_id': experiment_id})
    counts = batch_counts.counts_from(experiment['batchCount'], experiment['stateCounts'], experiment['stagedChunks'])
    assert (counts['registered'], counts['cancelled']) == (2498, 2)
    assert experiment['stagedChunks'] == {str(chunk_ids[1]): 999, str(chunk_ids[2]): 249}  # 250 are in
    # the next registrar takes the stale claim over: every batch counted once, the queue holds what was staged
    mongo_db[PENDING_BATCHES].update_one({'_id': chunk_ids[2]}, {'$set': {'claimedAt': time.time() - 600}})
    assert registration.register_pending(mongo_db, lookahead=None) == 1
    experiment = mongo_db[EXPERIMENTS].find_one({'_id': experiment_id})
    assert experiment['stateCounts']['registered'] == 2498 and experiment['stateCounts']['cancelled'] == 2


def test_an_experiment_cancelled_while_a_chunk_is_inserted_has_every_batch_cancelled(mongo_db):
    ensure_indexes(mongo_db)
    experiment_id, chunk_ids, seqs = stage_experiment(mongo_db, 2500)
    assert registration.claim(mongo_db, chunk_ids[1]) is not None  # a registrar is inserting the second chunk
    # DELETE /experiments/<id>: the flag, then the chunks it may rewrite, then the inserted batches
    mongo_db[EXPERIMENTS].update_one({'_id': experiment_id}, {'$set': {registration.CANCEL_REQUESTED: time.time()}})
    assert staged_batches.cancel(mongo_db, str(experiment_id)) == (1500, True)  # the claimed chunk is not rewritten
    assert transitions.BatchLifecycle(mongo_db).cancel_experiment(str(experiment_id)) == 0
    # the registrar inserts its chunk (as it read it: registered), sees the flag and cancels them
    mongo_db[PENDING_BATCHES].update_one({'_id': chunk_ids[1]}, {'$set': {'claimedAt': time.time() - 600}})
    assert registration.register_pending(mongo_db) == 1
    states = {b['state'] for b in mongo_db[BATCHES].find({'experimentId': str(experiment_id)}, {'state': 1})}
    assert states == {'cancelled'} and mongo_db[BATCHES].count_documents({}) == 2500
    experiment = mongo_db[EXPERIMENTS].find_one({'_id': experiment_id})
    assert experiment['stateCounts']['cancelled'] == 2500 and experiment['stateCounts']['registered'] == 0


def test_chunks_an_earlier_version_staged_are_inserted_at_once(mongo_db):
    ensure_indexes(mongo_db)
    experiment_id, chunk_ids, seqs = stage_experiment(mongo_db, 2500)
    new_id, _, _ = stage_experiment(mongo_db, 2500)
    # as the version before staged batches were read in their chunks wrote them: without what finds them there
    mongo_db[PENDING_BATCHES].update_many({'experimentId': experiment_id}, {'$unset': {
        field: '' for field in ('username', 'firstSeq', 'lastSeq', 'firstId', 'lastId', 'idTimes', 'version',
                                'claimedAt')}})
    assert registration.register_legacy(mongo_db) == 1
    assert sorted(b['seq'] for b in mongo_db[BATCHES].find({'experimentId': str(experiment_id)}, {'seq': 1})) == seqs
    assert mongo_db[EXPERIMENTS].find_one({'_id': experiment_id})['registrationComplete'] is True
    assert mongo_db[PENDING_BATCHES].count_documents({'experimentId': new_id}) == 3  # the new format waits its turn


def test_a_broker_and_the_registrar_at_once_count_each_batch_once(mongo_db):
    """The broker inserts a one-chunk experiment while the controller's registrar, woken by it, finds the chunk
    claimed: whichever completes the registration, the batch is counted as queued (it was not, in 19 of 60 such
    races, before the registrar moved the counts of chunks it saw claimed)."""
    ensure_indexes(mongo_db)
    for _ in range(40):
        experiment_id, chunk_ids, _ = stage_experiment(mongo_db, 1)
        threads = [threading.Thread(target=registration.register, args=(mongo_db, experiment_id, chunk_ids)),
                   threading.Thread(target=registration.register_pending, args=(mongo_db,))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        experiment = mongo_db[EXPERIMENTS].find_one({'_id': experiment_id})
        assert experiment['registrationComplete'] is True and experiment['stateCounts'] == {'registered': 1}
