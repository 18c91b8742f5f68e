"""POST /red: register an experiment and its batches, then wake the controller.

A registration is all or nothing for the client: the experiment is written first with `registrationComplete:
False`, then its batches, then the flag is set. Until then neither the controller (it skips such batches) nor
the API (lists leave them out) shows any of it. If the database fails in between, the broker removes what it
wrote, and where it cannot (the database is gone), the controller's janitor removes it later; the client gets
an error (503) and no experiment id, so it simply sends the RED again.
"""
import logging

import bson.errors
import pymongo.errors
from bson import ObjectId
from flask import Blueprint, g, jsonify, request

from cc_agency.broker.context import bool_arg, broker, db, requires_auth
from cc_agency.broker.errors import ApiError, bad_request
from cc_agency.broker.storable import UnstorableError, check_storable
from cc_agency.db import BATCHES, EXPERIMENTS, allocate_seq, now
from cc_agency.red import RedError, parse_red
from cc_agency.states import REGISTERED

log = logging.getLogger(__name__)
blueprint = Blueprint('red', __name__)
INSERT_CHUNK = 1000  # batches per insert_many: bounded request size, whatever the experiment's size
TOO_LARGE_CODES = (10334, 17419, 17420)  # BSONObjectTooLarge and kin: a document beyond 16 MB


def new_batch(experiment_id, seq, username, registration_time, batch, requirements):
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
        'history': [{'state': REGISTERED, 'time': registration_time, 'node': None, 'debugInfo': None, 'ccagent': None}],
        'inputs': batch['inputs'],
        'outputs': batch['outputs'],
    }


def _read_red():
    """The request body as JSON, whatever its Content-Type (curl -d sends a form type)."""
    try:
        red = request.get_json(force=True, silent=True)
    except RecursionError:
        red = None
    if red is None:
        raise bad_request('the request body must be a RED as JSON')
    try:
        check_storable(red)
    except UnstorableError as e:
        raise bad_request('invalid RED: {}'.format(e))
    return red


@blueprint.post('/red')
@requires_auth
def register_red():
    disable_retry = bool_arg('disableRetry')
    disable_connector_validation = bool_arg('disableConnectorValidation')
    try:
        experiment, batches = parse_red(_read_red())
    except RedError as e:
        raise bad_request('invalid RED: {}'.format(e))

    registration_time = now()
    experiment_id = ObjectId()
    username = g.user['username']
    experiment.update({
        '_id': experiment_id,
        'username': username,
        'registrationTime': registration_time,
        'disableRetry': disable_retry,
        'disableConnectorValidation': disable_connector_validation,
        'batchCount': len(batches),
        'registrationComplete': False,  # the controller ignores batches of an experiment until this is True
    })
    database = db()
    try:
        first_seq = allocate_seq(database, BATCHES, len(batches))
        experiment.update(seq=allocate_seq(database, EXPERIMENTS), batchSeq=first_seq)
        database[EXPERIMENTS].insert_one(experiment)
        for start in range(0, len(batches), INSERT_CHUNK):
            database[BATCHES].insert_many(
                [new_batch(str(experiment_id), first_seq + index, username, registration_time, batch,
                           experiment['requirements'])
                 for index, batch in enumerate(batches[start:start + INSERT_CHUNK], start)],
                ordered=False,
            )
        database[EXPERIMENTS].update_one({'_id': experiment_id}, {'$set': {'registrationComplete': True}})
    except (bson.errors.InvalidDocument, pymongo.errors.OperationFailure) as e:
        _discard(database, experiment_id)
        if isinstance(e, pymongo.errors.OperationFailure) and not _too_large(e):
            raise
        raise ApiError(413, 'the RED cannot be stored: a batch, or the experiment without its batches, is larger '
                       'than a database document may be (16 MB)')
    except Exception:
        _discard(database, experiment_id)
        raise
    log.info('experiment %s registered by %s with %d batches', experiment_id, username, len(batches))
    broker().waker.wake()
    return jsonify({'experimentId': str(experiment_id)})


def _too_large(error):
    """Whether a failed write was refused for the size of a document (the server says so per document)."""
    codes = {error.code}
    if isinstance(error, pymongo.errors.BulkWriteError):
        codes.update(write_error.get('code') for write_error in error.details.get('writeErrors', []))
    return bool(codes.intersection(TOO_LARGE_CODES))


def _discard(database, experiment_id):
    """Best effort: remove a half-registered experiment (the controller's janitor removes what stays)."""
    try:
        database[BATCHES].delete_many({'experimentId': str(experiment_id)})
        database[EXPERIMENTS].delete_one({'_id': experiment_id})
    except pymongo.errors.PyMongoError:
        log.warning('experiment %s left half-registered; the controller will remove it', experiment_id)
