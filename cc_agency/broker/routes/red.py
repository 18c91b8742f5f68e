"""POST /red: register an experiment and its batches, then wake the controller.

The registration is all or nothing for the client: the batches are staged first and the experiment is written
last (cc_agency.registration); if the database fails before that, the client gets an error (503) and no experiment
id, nothing is visible, and it simply sends the RED again. An experiment of one chunk (up to 1,000 batches) has all
its batches when the answer comes; a larger one gets them from the controller within seconds, so the answer takes
about the time of the RED's validation whatever the experiment's size. The answer says which
(`registrationComplete`).
"""
import logging

import bson.errors
import pymongo.errors
from bson import ObjectId
from flask import Blueprint, g, jsonify, request

from cc_agency import registration
from cc_agency.batch_counts import COUNTS
from cc_agency.broker.context import bool_arg, broker, db, requires_auth
from cc_agency.broker.errors import ApiError, bad_request
from cc_agency.broker.storable import UnstorableError, check_storable
from cc_agency.db import BATCHES, EXPERIMENTS, allocate_seq, now
from cc_agency.red import RedError, parse_red

log = logging.getLogger(__name__)
blueprint = Blueprint('red', __name__)
TOO_LARGE_CODES = (10334, 17419, 17420)  # BSONObjectTooLarge and kin: a document beyond 16 MB


def read_red():
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
        experiment, batches = parse_red(read_red())
    except RedError as e:
        raise bad_request('invalid RED: {}'.format(e))
    experiment_id, complete = register_experiment(experiment, batches, disable_retry, disable_connector_validation)
    return jsonify({'experimentId': str(experiment_id), 'registrationComplete': complete})


def register_experiment(experiment, batches, disable_retry, disable_connector_validation, extra=None):
    """Register a parsed experiment and its batches for the current user, wake the controller; returns
    (experiment id, whether all its batches are registered). `extra`: more fields of the experiment document."""
    registration_time = now()
    experiment_id = ObjectId()
    username = g.user['username']
    experiment.update(extra or {})
    experiment.update({
        '_id': experiment_id,
        'username': username,
        'registrationTime': registration_time,
        'disableRetry': disable_retry,
        'disableConnectorValidation': disable_connector_validation,
        'batchCount': len(batches),
        COUNTS: {},  # how many of its batches are in which state: kept by the life cycle (cc_agency.batch_counts)
    })
    database = db()
    try:
        first_seq = allocate_seq(database, BATCHES, len(batches))
        experiment.update(seq=allocate_seq(database, EXPERIMENTS), batchSeq=first_seq)
        chunk_ids = registration.stage(database, experiment, [
            registration.new_batch(str(experiment_id), first_seq + index, username, registration_time, batch,
                                   experiment['requirements'])
            for index, batch in enumerate(batches)])
    except registration.BatchTooLarge as e:
        raise ApiError(413, 'the RED cannot be stored: {}'.format(e))
    except (bson.errors.InvalidDocument, pymongo.errors.OperationFailure) as e:
        if isinstance(e, pymongo.errors.OperationFailure) and e.code not in TOO_LARGE_CODES:
            raise
        raise ApiError(413, 'the RED cannot be stored: the experiment without its batches is larger than a '
                       'database document may be (16 MB)')
    complete = len(chunk_ids) == 1 and _register_now(database, experiment_id, chunk_ids)
    log.info('experiment %s registered by %s with %d batches%s', experiment_id, username, len(batches),
             '' if complete else ' (the controller registers its batches)')
    broker().waker.wake()
    return experiment_id, complete


def _register_now(database, experiment_id, chunk_ids):
    """Register a one-chunk experiment's batches before answering; on a database error the controller does."""
    try:
        registration.register(database, experiment_id, chunk_ids)
        return True
    except pymongo.errors.PyMongoError as e:
        log.warning('experiment %s: registering its batches failed (%s), the controller will', experiment_id,
                    type(e).__name__)
        return False
