"""The command's stdout and stderr of a batch's latest attempt: stored whole (up to `controller.max_output_bytes`)
by the controller, streamed back by the broker (GET /batches/<id>/stdout and /stderr).

Why GridFS, as cc-agency 9.x did: a command may print far more than a MongoDB document holds (16 MiB), and a
reader should get it in pieces rather than as one document in memory. The `batch_output` document of a batch
(`_id`: the batch's id) names the streams of its latest attempt under `streams`. A stream of at most
INLINE_MAX_BYTES is kept in that document itself (`data`), as most are: a GridFS file costs the database several
writes and index updates (its files and chunks documents, the bucket's index checks), one document one write. A
longer stream is one GridFS file per stream and attempt in the bucket `batch_streams` (db.BATCH_STREAMS). A
document of an older agency holds the texts themselves (`stdout`, `stderr`) and is read as it is.

Only the latest attempt's output is kept: the document is replaced only by an attempt at least as new (a fence on
`attempt`), and the files it named before are deleted then; an attempt that lost the race deletes its own. A stream
longer than the limit keeps its first `max_output_bytes` and ends with TRUNCATION_STATEMENT, and its length as
written by the command is in the document (the broker sends it as TRUNCATED_HEADER). What is stored has been
masked by the controller (runner.py). Who may read it is the broker's business (the batch's owner, batches.py).
"""
import gridfs
import pymongo.errors
from bson import Binary

from cc_agency.db import BATCH_OUTPUT, BATCH_STREAMS, now

STREAMS = ('stdout', 'stderr')
UPLOAD_CHUNK_BYTES = 255 * 1024  # GridFS's own chunk size: one chunk document per piece written
INLINE_MAX_BYTES = 64 * 1024  # both streams inline stay far inside a document's 16 MiB
TRUNCATED_HEADER = 'X-CC-Agency-Output-Truncated'  # the bytes the command wrote on a stream that was cut
TRUNCATION_STATEMENT = ('\n[cc-agency: output cut at {limit_bytes} bytes (controller.max_output_bytes); the command '
                        'wrote {written_bytes} bytes]\n')


def truncation_statement(limit_bytes, written_bytes):
    return TRUNCATION_STATEMENT.format(limit_bytes=limit_bytes, written_bytes=written_bytes).encode('ascii')


def _bucket(db):
    return gridfs.GridFSBucket(db, bucket_name=BATCH_STREAMS)


def _delete_files(bucket, file_ids):
    for file_id in file_ids:
        try:
            bucket.delete(file_id)
        except gridfs.errors.NoFile:
            pass  # deleted by the attempt that replaced it


def _file_ids(document):
    return [entry['fileId'] for entry in ((document or {}).get('streams') or {}).values()
            if isinstance(entry, dict) and 'fileId' in entry]


def _upload(bucket, batch_id, attempt, stream, data, tail, written_bytes, truncated):
    metadata = {'batchId': str(batch_id), 'attempt': attempt, 'stream': stream, 'writtenBytes': written_bytes,
                'truncated': truncated}
    with bucket.open_upload_stream('{}-{}-{}'.format(batch_id, attempt, stream), metadata=metadata,
                                   chunk_size_bytes=UPLOAD_CHUNK_BYTES) as upload:
        for start in range(0, len(data), UPLOAD_CHUNK_BYTES):
            upload.write(data[start:start + UPLOAD_CHUNK_BYTES])
        upload.write(tail)
    return upload._id


def store(db, batch_id, attempt, streams, limit_bytes):
    """Keep the streams of `attempt` as the batch's output unless a newer attempt stored its own; True when kept.

    :param streams: {'stdout' | 'stderr': (the bytes to keep (masked), the bytes the command wrote, whether the
        limit cut them)}
    """
    bucket = _bucket(db)
    entries = {}
    try:
        for stream in STREAMS:
            data, written_bytes, truncated = streams.get(stream, (b'', 0, False))
            tail = truncation_statement(limit_bytes, written_bytes) if truncated else b''
            entry = {'writtenBytes': written_bytes, 'truncated': truncated}
            if len(data) + len(tail) <= INLINE_MAX_BYTES:
                entry['data'] = Binary(data + tail)
            else:
                entry['fileId'] = _upload(bucket, batch_id, attempt, stream, data, tail, written_bytes, truncated)
            entries[stream] = entry
        document = {'attempt': attempt, 'time': now(), 'streams': entries}
        replaced = db[BATCH_OUTPUT].find_one_and_replace(
            {'_id': batch_id, 'attempt': {'$lte': attempt}}, document, upsert=True)
    except pymongo.errors.DuplicateKeyError:  # a newer attempt's output is there
        _delete_files(bucket, _file_ids({'streams': entries}))
        return False
    except Exception:
        _delete_files(bucket, _file_ids({'streams': entries}))
        raise
    kept = _file_ids({'streams': entries})
    _delete_files(bucket, [file_id for file_id in _file_ids(replaced) if file_id not in kept])
    return True


def open_stream(db, batch_id, stream):
    """(an iterator of the stored bytes of `stream` in pieces, {header: value}), or None when the batch has no
    output yet. A file deleted by a newer attempt meanwhile is looked up again."""
    for _ in range(3):
        document = db[BATCH_OUTPUT].find_one({'_id': batch_id})
        if document is None:
            return None
        entry = (document.get('streams') or {}).get(stream)
        if entry is None:  # an older agency's document: the text itself
            text = document.get(stream) or ''
            return iter([text.encode('utf-8')] if text else []), {}
        headers = {TRUNCATED_HEADER: str(entry['writtenBytes'])} if entry.get('truncated') else {}
        if 'data' in entry:
            data = bytes(entry['data'])
            return iter([data] if data else []), dict(headers, **{'Content-Length': str(len(data))})
        try:
            grid_out = _bucket(db).open_download_stream(entry['fileId'])
        except gridfs.errors.NoFile:
            continue
        return _pieces(grid_out), dict(headers, **{'Content-Length': str(grid_out.length)})
    return None


def _pieces(grid_out):
    try:
        while True:
            piece = grid_out.readchunk()
            if not piece:
                return
            yield piece
    finally:
        grid_out.close()

