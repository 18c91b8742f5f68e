"""POST /red: register an experiment and its batches, then wake the controller."""
import logging

from bson import ObjectId
from flask import Blueprint, g, jsonify, request

from cc_agency.broker.context import bool_arg, broker, db, requires_auth
from cc_agency.broker.errors import bad_request
from cc_agency.db import BATCHES, EXPERIMENTS, now
from cc_agency.red import RedError, parse_red
from cc_agency.states import REGISTERED

log = logging.getLogger(__name__)
blueprint = Blueprint('red', __name__)


def new_batch(experiment_id, username, registration_time, batch, requirements):
    return {
        'experimentId': experiment_id,
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


@blueprint.post('/red')
@requires_auth
def register_red():
    disable_retry = bool_arg('disableRetry')
    disable_connector_validation = bool_arg('disableConnectorValidation')
    red = request.get_json(silent=True)
    if red is None:
        raise bad_request('the request body must be a RED as JSON (Content-Type: application/json)')
    try:
        experiment, batches = parse_red(red)
    except RedError as e:
        raise bad_request('invalid RED: {}'.format(e))

    registration_time = now()
    experiment_id = ObjectId()
    experiment.update({
        '_id': experiment_id,
        'username': g.user['username'],
        'registrationTime': registration_time,
        'disableRetry': disable_retry,
        'disableConnectorValidation': disable_connector_validation,
        'batchCount': len(batches),
        'registrationComplete': False,  # the controller ignores batches of an experiment until this is True
    })
    database = db()
    try:
        database[EXPERIMENTS].insert_one(experiment)
        database[BATCHES].insert_many(
            [new_batch(str(experiment_id), g.user['username'], registration_time, batch, experiment['requirements'])
             for batch in batches],
            ordered=False,
        )
        database[EXPERIMENTS].update_one({'_id': experiment_id}, {'$set': {'registrationComplete': True}})
    except Exception:
        _discard(database, experiment_id)
        raise
    log.info('experiment %s registered by %s with %d batches', experiment_id, g.user['username'], len(batches))
    broker().waker.wake()
    return jsonify({'experimentId': str(experiment_id)})


def _discard(database, experiment_id):
    """Best effort: remove a half-registered experiment (the controller's janitor removes what stays)."""
    try:
        database[BATCHES].delete_many({'experimentId': str(experiment_id)})
        database[EXPERIMENTS].delete_one({'_id': experiment_id})
    except Exception:
        log.warning('experiment %s left half-registered; the controller will remove it', experiment_id)
