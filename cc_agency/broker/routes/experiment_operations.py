"""DELETE /experiments/<id> (cancel what has not ended) and POST /experiments/<id>/resubmit (run again what failed).

Why apart from the read routes of experiments.py: these change state, through the batch life cycle and the
registration that POST /red uses, and they have rules of their own. Ownership is as for batches: a user acts on
their own experiments, an admin on all.

A resubmission needs the RED again: the stored one no longer holds the credentials (they are voided when the batches
end), so the client sends it with fresh ones. It must be the same experiment -- the same command (`cli`) and the same
batches, compared with their protected values left out -- and only the batches that ended in the chosen states
(`states`, default `failed`) are registered again, as a new experiment linked both ways: `resubmittedFrom` on the new
one, `resubmittedAs` (a list: it can be resubmitted more than once) on the original.
"""
from flask import Blueprint, jsonify, request

from cc_agency import staged_batches
from cc_agency.broker.context import broker, db, find_visible, object_id, requires_auth, shown
from cc_agency.broker.errors import ApiError, bad_request, not_found
from cc_agency.broker.routes.red import read_red, register_experiment
from cc_agency.db import BATCHES, EXPERIMENTS, SEQ, now
from cc_agency.registration import CANCEL_REQUESTED
from cc_agency.red import RedError, parse_red
from cc_agency.secrets import void_batch_secrets
from cc_agency.states import CANCELLED, FAILED
from cc_agency.transitions import BatchLifecycle

blueprint = Blueprint('experiment_operations', __name__)
RESUBMITTABLE_STATES = (FAILED, CANCELLED)
DEFAULT_RESUBMIT_STATES = (FAILED,)
EXPERIMENT_CANCELLED = 'experiment cancelled by user'


def _own_experiment(experiment_id, projection=None):
    experiment = find_visible(db()[EXPERIMENTS], object_id(experiment_id, 'experiment id'), projection)
    if experiment is None:
        raise not_found('experiment')
    return experiment


@blueprint.delete('/experiments/<experiment_id>')
@requires_auth
def cancel_experiment(experiment_id):
    experiment = _own_experiment(experiment_id, {'registrationComplete': 1})
    cancelled = 0
    if experiment.get('registrationComplete') is False:
        # first the flag: a chunk a registrar is inserting now is cancelled by it once its batches are in
        db()[EXPERIMENTS].update_one({'_id': experiment['_id']}, {'$min': {CANCEL_REQUESTED: now()}})
        cancelled = staged_batches.cancel(db(), str(experiment['_id']), debug_info=EXPERIMENT_CANCELLED)[0]
    cancelled += BatchLifecycle(db()).cancel_experiment(str(experiment['_id']), EXPERIMENT_CANCELLED)
    if cancelled:
        broker().waker.wake()  # the controller removes their containers
    return jsonify({'experimentId': str(experiment['_id']), 'cancelled': cancelled})


def resubmit_states():
    """The `states` query parameter: comma-separated, of RESUBMITTABLE_STATES."""
    value = request.args.get('states')
    if value is None:
        return DEFAULT_RESUBMIT_STATES
    states = tuple(state.strip() for state in value.split(',') if state.strip())
    wrong = [state for state in states if state not in RESUBMITTABLE_STATES]
    if not states or wrong:
        raise bad_request('query parameter states: "{}" is not a comma-separated list of {}'.format(
            shown(value), ', '.join(RESUBMITTABLE_STATES)))
    return states


def comparable(batch):
    """A batch's inputs and outputs with their protected values left out: what must match the original's."""
    return void_batch_secrets({'inputs': batch.get('inputs') or {}, 'outputs': batch.get('outputs') or {}})


@blueprint.post('/experiments/<experiment_id>/resubmit')
@requires_auth
def resubmit_experiment(experiment_id):
    original = _own_experiment(experiment_id, {'cli': 1, 'batchSeq': 1, 'batchCount': 1, 'disableRetry': 1,
                                               'disableConnectorValidation': 1, 'registrationComplete': 1})
    states = resubmit_states()
    try:
        experiment, red_batches = parse_red(read_red())
    except RedError as e:
        raise bad_request('invalid RED: {}'.format(e))
    if experiment['cli'] != original.get('cli'):
        raise bad_request('the RED\'s cli differs from the experiment\'s: resubmit the same RED (POST /red registers a '
                          'new one)')
    if len(red_batches) != original.get('batchCount'):
        raise bad_request('the RED has {} batches, the experiment {}: resubmit the same RED'.format(
            len(red_batches), original.get('batchCount')))
    staged = []
    if original.get('registrationComplete') is False:  # batches cancelled in their chunk
        staged = [batch for batch in staged_batches.of_experiment(db(), original, {}) if batch['state'] in states]
    ended = staged_batches.merged(list(db()[BATCHES].find(
        {'experimentId': str(original['_id']), 'state': {'$in': list(states)}}, {SEQ: 1, 'inputs': 1, 'outputs': 1})),
        staged)
    ended.sort(key=lambda batch: batch[SEQ])
    if not ended:
        raise ApiError(409, 'no batch of the experiment ended {}: nothing to resubmit'.format(' or '.join(states)))
    chosen = []
    for batch in ended:
        index = batch[SEQ] - original['batchSeq']
        if comparable(red_batches[index]) != comparable(batch):
            raise bad_request('batches[{}] of the RED differs from the experiment\'s: resubmit the same '
                              'RED'.format(index))
        chosen.append(red_batches[index])
    new_id, complete = register_experiment(experiment, chosen, original.get('disableRetry', False),
                                           original.get('disableConnectorValidation', False),
                                           extra={'resubmittedFrom': str(original['_id'])})
    db()[EXPERIMENTS].update_one({'_id': original['_id']}, {'$push': {'resubmittedAs': str(new_id)}})
    return jsonify({'experimentId': str(new_id), 'registrationComplete': complete, 'batchCount': len(chosen),
                    'resubmittedFrom': str(original['_id'])})
