"""The one place where a batch changes state: a compare-and-set on {_id, state} plus a history entry.

A transition succeeds only if the batch is still in the state the caller saw (and, for a run, still in the
attempt the caller runs), so a stale decision — a late container exit, a cancel racing a completion, two
controllers — can never overwrite a newer one. Entering a terminal state voids the batch's connector secrets in
the same write.
"""
import logging

import pymongo.errors
from bson import ObjectId

from cc_agency.db import BATCHES, EXPERIMENTS, history_push, now
from cc_agency.secrets import VOIDED, replace_protected, void_batch_secrets
from cc_agency.states import TERMINAL_STATES, is_allowed

log = logging.getLogger(__name__)


class TransitionError(Exception):
    """A transition that the life cycle forbids (a programming error, not a race)."""


def history_entry(state, node=None, debug_info=None, ccagent=None, time=None):
    return {'state': state, 'time': now() if time is None else time, 'node': node,
            'debugInfo': debug_info, 'ccagent': ccagent}


def transition_update(batch, to_state, node=None, debug_info=None, ccagent=None, set_fields=None, inc_fields=None):
    """The MongoDB update document of a transition (pure). `batch` must hold inputs/outputs to void on exit."""
    update_set = {'state': to_state, 'node': node}
    if set_fields:
        update_set.update(set_fields)
    if to_state in TERMINAL_STATES:
        update_set.update(void_batch_secrets({'inputs': batch.get('inputs'), 'outputs': batch.get('outputs')}))
    update = {'$set': update_set,
              '$push': {'history': history_push(history_entry(to_state, node, debug_info, ccagent))}}
    if inc_fields:
        update['$inc'] = inc_fields
    return update


def transition(db, batch, to_state, node=None, debug_info=None, ccagent=None, set_fields=None, inc_fields=None,
               match=None, persistent=None):
    """Move `batch` (a document with at least _id and state) to `to_state` if nobody moved it meanwhile.

    `match` adds fields that must still hold (e.g. {'attempts': n} to fence a run by attempt). Returns True when
    this call made the transition. With `persistent` (a threading.Event that says "give up"), a lost database
    connection is waited out; a write that may have been applied before the connection broke is recognised by
    its history entry, so it is neither lost nor applied twice.
    """
    from_state = batch['state']
    if not is_allowed(from_state, to_state):
        raise TransitionError('batch {}: {} -> {} is not allowed'.format(batch['_id'], from_state, to_state))
    query = {'_id': batch['_id'], 'state': from_state}
    if match:
        query.update(match)
    update = transition_update(batch, to_state, node, debug_info, ccagent, set_fields, inc_fields)
    entry_time = update['$push']['history']['$each'][0]['time']
    delay_s, retried = 0.5, False
    while True:
        try:
            done = db[BATCHES].update_one(query, update).modified_count == 1
            if not done and retried:  # the attempt before the connection broke may have been applied
                done = _was_applied(db, batch['_id'], to_state, entry_time)
            break
        except pymongo.errors.ConnectionFailure as e:
            if persistent is None or persistent.is_set():
                raise
            log.warning('batch %s: database unreachable (%s) while moving it to %s; retrying', batch['_id'],
                        type(e).__name__, to_state)
            persistent.wait(delay_s)
            delay_s, retried = min(delay_s * 2, 5), True
    if done:
        log.info('batch %s: %s -> %s%s', batch['_id'], from_state, to_state, ' on node {}'.format(node) if node else '')
        if to_state in TERMINAL_STATES and batch.get('experimentId'):
            void_experiment_secrets_if_done(db, batch['experimentId'])
    return done


def _was_applied(db, batch_id, to_state, entry_time):
    doc = db[BATCHES].find_one({'_id': batch_id}, {'state': 1, 'history': {'$slice': -1}})
    return bool(doc and doc['state'] == to_state and doc.get('history') and doc['history'][-1]['time'] == entry_time)


def void_experiment_secrets_if_done(db, experiment_id):
    """Once every batch of an experiment has ended, overwrite its image registry credentials.

    Runs after each terminal transition, so it asks the cheap question first: does the experiment (one lookup by
    _id) still hold a protected value? Only then are its unfinished batches counted. While its registration is
    under way, batches still to be inserted need the credentials (cc_agency.registration calls this again when it
    is complete).
    """
    oid = ObjectId(experiment_id)
    experiment = db[EXPERIMENTS].find_one({'_id': oid}, {'container.settings.image.auth': 1,
                                                         'registrationComplete': 1})
    auth = (experiment or {}).get('container', {}).get('settings', {}).get('image', {}).get('auth')
    voided = replace_protected(auth, VOIDED) if auth else auth
    if voided == auth or experiment.get('registrationComplete') is False:
        return
    if db[BATCHES].count_documents({'experimentId': experiment_id, 'state': {'$nin': list(TERMINAL_STATES)}}, limit=1):
        return
    db[EXPERIMENTS].update_one({'_id': oid}, {'$set': {'container.settings.image.auth': voided}})
