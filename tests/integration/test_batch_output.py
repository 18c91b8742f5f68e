"""The command's stdout and stderr, whole up to controller.max_output_bytes, in GridFS (at most 64 KiB: in the
batch's output document), streamed back over HTTP (real controller, broker, engine and SecantusDB): 3 MiB come back
byte for byte, more than the limit comes back as exactly the limit plus a statement of the limit (and a header with
what the command wrote), protected values are masked also where the limit cut them, another user gets nothing, and
only the latest attempt's output is kept."""
import gridfs
from bson import ObjectId

from cc_agency import batch_output
from cc_agency.db import BATCH_OUTPUT, BATCH_STREAMS
from cc_agency.secrets import MASK
from tests.integration.cluster import batches_of, command_red, nodes_of, submit, user_session

LIMIT_BYTES = 4 * 1024 * 1024
REGISTRY_PASSWORD = 'S3cret-Registry-x7'
# 3 MiB of numbered lines (so a lost or repeated piece shows), and a line on stderr
THREE_MIB = ("import sys\nfor i in range(3 * 1024 * 1024 // 16): sys.stdout.write('line %010d\\n' % i)\n"
             "sys.stderr.write('done\\n')")
FIVE_MIB = "import sys; sys.stdout.write('z' * (5 * 1024 * 1024))"
# the registry password (protected), spelt out only at run time: in the first line (23 bytes), and at the end cut
# by the limit after its first 8 characters
SECRET = ("import sys; s = 'S3cret-Registry' + '-x7'; sys.stdout.write('a ' + s + ' b\\n');"
          "sys.stdout.write('x' * ({} - 23 - 8) + s + 'tail' * 10); sys.stderr.write(s)").format(LIMIT_BYTES)
SECRET_WRITTEN_BYTES = LIMIT_BYTES - 8 + len(REGISTRY_PASSWORD) + 40


def test_outputs_are_whole_up_to_the_limit_cut_there_and_masked(make_agency, engine):
    agency = make_agency(nodes_of([engine]), extra={'controller.max_output_bytes': LIMIT_BYTES})
    alice, bob = user_session(agency), user_session(agency, 'bob')
    red = command_red([THREE_MIB, FIVE_MIB, SECRET], ram=512)
    red['container']['settings']['image']['auth'] = {'username': 'registry-user', 'password': REGISTRY_PASSWORD}
    experiment_id = submit(agency, alice, red)
    batches = {b['inputs']['script']: b for b in batches_of(agency, alice, experiment_id, 3)}
    assert all(b['state'] == 'succeeded' for b in batches.values()), [b['history'][-1] for b in batches.values()]

    def get(batch, stream, session=alice):
        return session.get('{}/batches/{}/{}'.format(agency.url, batch['_id'], stream), timeout=60)

    whole = get(batches[THREE_MIB], 'stdout')
    assert whole.status_code == 200 and whole.headers['Content-Type'].startswith('text/plain')
    assert whole.content == b''.join(b'line %010d\n' % i for i in range(3 * 1024 * 1024 // 16))
    assert batch_output.TRUNCATED_HEADER not in whole.headers
    assert get(batches[THREE_MIB], 'stderr').text == 'done\n'

    cut = get(batches[FIVE_MIB], 'stdout')
    statement = '\n[cc-agency: output cut at 4194304 bytes (controller.max_output_bytes); the command wrote {} bytes]\n'
    assert cut.content == b'z' * LIMIT_BYTES + statement.format(5242880).encode()
    assert cut.headers[batch_output.TRUNCATED_HEADER] == '5242880'

    masked = get(batches[SECRET], 'stdout')
    assert masked.text.startswith('a {} b\nxxx'.format(MASK))
    # the value's first 8 characters, which the limit cut from the rest, are masked too
    assert masked.text.endswith('x' * 10 + MASK + statement.format(SECRET_WRITTEN_BYTES))
    assert masked.headers[batch_output.TRUNCATED_HEADER] == str(SECRET_WRITTEN_BYTES)
    masked = masked.text
    assert REGISTRY_PASSWORD not in masked and get(batches[SECRET], 'stderr').text == MASK
    assert REGISTRY_PASSWORD not in agency.log('controller')

    # another user's batch: no output, as if it did not exist
    other = get(batches[THREE_MIB], 'stdout', session=bob)
    assert other.status_code == 404 and other.json() == {'message': 'batch not found'}


def test_small_streams_stay_in_the_document_and_only_the_latest_attempts_files_are_kept(mongo_db):
    batch_id = ObjectId()
    files = mongo_db[BATCH_STREAMS + '.files']
    chunks = mongo_db[BATCH_STREAMS + '.chunks']

    def read(stream):
        pieces, headers = batch_output.open_stream(mongo_db, batch_id, stream)
        return b''.join(pieces), headers

    assert batch_output.open_stream(mongo_db, batch_id, 'stdout') is None
    assert batch_output.store(mongo_db, batch_id, 1, {'stdout': (b'one', 3, False), 'stderr': (b'e1', 2, False)}, 99)
    assert read('stdout') == (b'one', {'Content-Length': '3'}) and read('stderr')[0] == b'e1'
    assert files.count_documents({}) == 0  # small streams: in the batch_output document, no GridFS file
    # a stream over the inline size is a GridFS file (the other one stays inline)
    assert batch_output.store(mongo_db, batch_id, 2, {'stdout': (b'two' * 100000, 300000, False)}, 10 ** 6)
    assert read('stdout') == (b'two' * 100000, {'Content-Length': '300000'}) and read('stderr')[0] == b''
    assert [(f['metadata']['attempt'], f['metadata']['stream']) for f in files.find()] == [(2, 'stdout')]
    assert chunks.count_documents({}) == 2  # 300,000 bytes: two 255 KiB chunks
    # a late attempt 1 (a stale thread) neither replaces the output nor leaves files behind
    assert not batch_output.store(mongo_db, batch_id, 1, {'stdout': (b'late', 4, False)}, 99)
    assert not batch_output.store(mongo_db, batch_id, 1, {'stdout': (b'L' * 70000, 70000, False)}, 10 ** 6)
    assert read('stdout')[0] == b'two' * 100000 and files.count_documents({}) == 1
    # a newer attempt's small output replaces it, and attempt 2's file is gone; a cut stream ends with the statement
    assert batch_output.store(mongo_db, batch_id, 3, {'stdout': (b'abc', 10, True)}, 3)
    statement = batch_output.truncation_statement(3, 10)
    assert read('stdout') == (b'abc' + statement, {'Content-Length': str(3 + len(statement)),
                                                   batch_output.TRUNCATED_HEADER: '10'})
    assert files.count_documents({}) == 0 and chunks.count_documents({}) == 0
    # an older agency's document holds the texts themselves
    old_id = ObjectId()
    mongo_db[BATCH_OUTPUT].insert_one({'_id': old_id, 'attempt': 1, 'stdout': 'old out', 'stderr': ''})
    pieces, headers = batch_output.open_stream(mongo_db, old_id, 'stdout')
    assert b''.join(pieces) == b'old out' and headers == {}
    assert gridfs.GridFSBucket(mongo_db, BATCH_STREAMS).find({'metadata.batchId': str(old_id)}).to_list() == []
