"""The batch life cycle: the one place where a batch changes state, as named operations.

`BatchLifecycle` is what the broker and the controller's workers are handed to write batch state (the write side
that Nomad's scheduler calls its Planner): `schedule`, `start`, `succeed`, `fail_attempt` (with the retry policy),
`abandon` (fail an attempt nobody watches any more), `time_out` (a run over its wall-clock limit),
`fail_unplaceable`, `cancel` and `cancel_experiment`. Each is a compare-and-set on {_id, state} plus a history
entry; a run's operations are also fenced by its attempt number (`attempts`), so a stale decision — a late
container exit, a cancel racing a completion, two controllers — can never overwrite a newer one. Entering a
terminal state voids the batch's connector secrets in the same write and marks the batch for the
notification hooks (cc_agency/notifications.py NOTIFY_MARKER), so that no ended batch is without its marker. Which
moves are allowed at all is cc_agency.states.
"""
import logging

import pymongo.errors
from bson import ObjectId

from cc_agency.batch_counts import COUNTS, count_transition
from cc_agency.timelimits import time_limit_reason
from cc_agency.db import BATCHES, EXPERIMENTS, history_push, now
from cc_agency.notifications import NOTIFY_MARKER
from cc_agency.secrets import VOIDED, replace_protected_image_auth, void_batch_secrets
from cc_agency.states import (ACTIVE_STATES, CANCELLED, FAILED, PROCESSING, REGISTERED, SCHEDULED, SUCCEEDED,
                              TERMINAL_STATES, is_allowed, state_after_failure)

log = logging.getLogger(__name__)

# what an abandoned attempt's batch and experiment are read with: what fail_attempt needs
ATTEMPT_FIELDS = {'state': 1, 'attempts': 1, 'experimentId': 1, 'inputs': 1, 'outputs': 1}
RETRY_FIELDS = {'disableRetry': 1, 'execution.settings.retryIfFailed': 1}


class TransitionError(Exception):
    """A transition that the life cycle forbids (a programming error, not a race)."""


class AttemptFailed(Exception):
    """An attempt failed; `permanent` when another attempt cannot succeed either, `ccagent` the agent's result."""

    def __init__(self, reasons, permanent=False, ccagent=None):
        super().__init__('; '.join(reasons))
        self.reasons = list(reasons)
        self.permanent = permanent
        self.ccagent = ccagent


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
        update_set[NOTIFY_MARKER] = True  # the outbox of the notifier: in the write that ends the batch
    update = {'$set': update_set,
              '$push': {'history': history_push(history_entry(to_state, node, debug_info, ccagent))}}
    if inc_fields:
        update['$inc'] = inc_fields
    return update


def retry_allowed(experiment):
    """Whether the RED lets a failed batch run again (pure; `experiment` None: it is gone, so no)."""
    if experiment is None or experiment.get('disableRetry'):
        return False
    return experiment.get('execution', {}).get('settings', {}).get('retryIfFailed', True)


def failure_record(attempt, node, failure, attempts_to_fail, experiment):
    """Where a failed attempt leads and what its history says: (state, debugInfo) (pure)."""
    to_state = state_after_failure(attempt, attempts_to_fail, retry_allowed(experiment), failure.permanent)
    debug_info = ['attempt {} on node {} failed: {}'.format(attempt, node, failure.reasons[0])]
    debug_info.extend(failure.reasons[1:])
    if to_state == REGISTERED:
        debug_info.append('retrying ({} of {} attempts used)'.format(attempt, attempts_to_fail))
    return to_state, debug_info


def agent_summary(result):
    """What of the agent's result goes into the batch history (stdout/stderr are stored apart)."""
    if not result:
        return None
    return {key: result.get(key) for key in ('state', 'command', 'process', 'inputs', 'outputs')}


class BatchLifecycle:
    """Named, fenced state changes of batches on one database.

    :param attempts_to_fail: how many attempts a batch gets (controller.scheduling.attempts_to_fail)
    :param persistent: a threading.Event that says "give up": until it is set, a lost database connection is
        waited out, and a write that may have been applied before the connection broke is recognised by its history
        entry, so it is neither lost nor applied twice. None: a lost connection raises (the broker answers 503).
    :param on_freed: called after a batch stopped holding a node's resources (to refill them at once)
    :param on_requeued: on_requeued(experiment id), called after a batch went back to the queue (a retry): the
        scheduler's QueueHeads.forget
    """

    def __init__(self, db, attempts_to_fail=1, persistent=None, on_freed=None, on_requeued=None):
        self.db = db
        self.attempts_to_fail = attempts_to_fail
        self.persistent = persistent
        self.on_freed = on_freed
        self.on_requeued = on_requeued

    # --- the scheduler --------------------------------------------------------------------------------------------
    def schedule(self, batch_id, experiment_id, attempt, node, gpu_ids):
        """registered -> scheduled on `node` as attempt number `attempt` (the batch had attempt - 1)."""
        return self._move({'_id': batch_id, 'state': REGISTERED, 'experimentId': experiment_id}, SCHEDULED, node=node,
                          set_fields={'usedGPUs': list(gpu_ids) or None}, inc_fields={'attempts': 1},
                          match={'attempts': attempt - 1})

    def fail_unplaceable(self, batch, reason):
        """registered -> failed: no node could ever hold it. `batch` holds inputs/outputs (voided)."""
        return self._move(dict(batch, state=REGISTERED), FAILED, debug_info=['no node can ever run this batch: ' + reason])

    # --- one attempt ----------------------------------------------------------------------------------------------
    def start(self, batch, attempt, node):
        """scheduled -> processing: the attempt's container runs."""
        return self._move(dict(batch, state=SCHEDULED), PROCESSING, node=node, match={'attempts': attempt})

    def succeed(self, batch, attempt, node, agent_result):
        """processing -> succeeded, with the agent's summary in the history."""
        return self._move(dict(batch, state=PROCESSING), SUCCEEDED, node=node, ccagent=agent_summary(agent_result),
                          match={'attempts': attempt})

    def fail_attempt(self, batch, experiment, attempt, node, failure):
        """A failed attempt (from scheduled or processing: `batch['state']`): back to the queue while the retry
        policy allows it, else failed for good. Returns the new state, or None when the batch had moved on."""
        to_state, debug_info = failure_record(attempt, node, failure, self.attempts_to_fail, experiment)
        requeued = to_state == REGISTERED
        if not self._move(batch, to_state, node=None if requeued else node, debug_info=debug_info,
                          ccagent=agent_summary(failure.ccagent), set_fields={'usedGPUs': None} if requeued else None,
                          match={'attempts': attempt}):
            return None
        log.info('batch %s on node %s: attempt %d failed (%s) -> %s', batch['_id'], node, attempt, failure.reasons[0],
                 to_state)
        return to_state

    def time_out(self, batch, attempt, node, limit_s):
        """processing -> failed: the run exceeded its wall-clock limit (its container was removed). Never retried,
        as Slurm's TIMEOUT: another run would most likely run as long."""
        debug_info = ['attempt {} on node {}: {}'.format(attempt, node, time_limit_reason(limit_s))]
        if not self._move(dict(batch, state=PROCESSING), FAILED, node=node, debug_info=debug_info,
                          match={'attempts': attempt}):
            return False
        log.info('batch %s on node %s: attempt %d exceeded its time limit of %d s -> failed', batch['_id'], node,
                 attempt, limit_s)
        return True

    def abandon(self, batch_id, attempt, node, reason):
        """Fail an attempt without waiting for it (its node is lost, its container vanished, its thread crashed),
        if the batch is still active in that attempt."""
        batch = self.persistently(lambda: self.db[BATCHES].find_one({'_id': batch_id, 'attempts': attempt}, ATTEMPT_FIELDS))
        if batch is None or batch['state'] not in ACTIVE_STATES:
            return None
        experiment = self.persistently(lambda: self.db[EXPERIMENTS].find_one({'_id': ObjectId(batch['experimentId'])},
                                                                      RETRY_FIELDS))
        return self.fail_attempt(batch, experiment, attempt, node, AttemptFailed([reason]))

    # --- the user -------------------------------------------------------------------------------------------------
    def cancel(self, batch, debug_info='cancelled by user'):
        """Any unfinished state -> cancelled; the controller removes a container the batch still has."""
        return self._move(batch, CANCELLED, node=batch.get('node'), debug_info=[debug_info])

    def cancel_experiment(self, experiment_id, debug_info='experiment cancelled by user', tries=5):
        """Cancel every batch of the experiment that has not ended; returns how many this call cancelled. A batch the
        controller moves between our read and our write is read again (up to `tries` times)."""
        fields = {'state': 1, 'node': 1, 'experimentId': 1, 'inputs': 1, 'outputs': 1}
        unfinished = {'experimentId': experiment_id, 'state': {'$nin': list(TERMINAL_STATES)}}
        cancelled = 0
        for batch in self.db[BATCHES].find(unfinished, fields):
            for _ in range(tries):
                if self.cancel(batch, debug_info):
                    cancelled += 1
                    break
                batch = self.db[BATCHES].find_one({'_id': batch['_id']}, fields)
                if batch is None or batch['state'] in TERMINAL_STATES:
                    break
        return cancelled

    # --- the compare-and-set --------------------------------------------------------------------------------------
    def persistently(self, operation):
        """Run a database read the caller cannot go on without, waiting out a lost connection while `persistent`
        allows."""
        delay_s = 0.5
        while True:
            try:
                return operation()
            except pymongo.errors.ConnectionFailure as e:
                if self.persistent is None or self.persistent.is_set():
                    raise
                log.warning('database unreachable (%s), retrying', type(e).__name__)
                self.persistent.wait(delay_s)
                delay_s = min(delay_s * 2, 5)

    def _move(self, batch, to_state, node=None, debug_info=None, ccagent=None, set_fields=None, inc_fields=None,
              match=None):
        """Move `batch` (a document with at least _id and state) to `to_state` if nobody moved it meanwhile and the
        fields in `match` still hold. Returns True when this call made the transition."""
        from_state = batch['state']
        if not is_allowed(from_state, to_state):
            raise TransitionError('batch {}: {} -> {} is not allowed'.format(batch['_id'], from_state, to_state))
        query = dict(match or {}, _id=batch['_id'], state=from_state)
        update = transition_update(batch, to_state, node, debug_info, ccagent, set_fields, inc_fields)
        entry_time = update['$push']['history']['$each'][0]['time']
        delay_s, retried = 0.5, False
        while True:
            try:
                done = self.db[BATCHES].update_one(query, update).modified_count == 1
                if not done and retried:  # the attempt before the connection broke may have been applied
                    done = _was_applied(self.db, batch['_id'], to_state, entry_time)
                break
            except pymongo.errors.ConnectionFailure as e:
                if self.persistent is None or self.persistent.is_set():
                    raise
                log.warning('batch %s: database unreachable (%s) while moving it to %s; retrying', batch['_id'],
                            type(e).__name__, to_state)
                self.persistent.wait(delay_s)
                delay_s, retried = min(delay_s * 2, 5), True
        if not done:
            return False
        log.info('batch %s: %s -> %s%s', batch['_id'], from_state, to_state, ' on node {}'.format(node) if node else '')
        count_transition(self.db, batch.get('experimentId'), from_state, to_state)
        if to_state == REGISTERED and self.on_requeued is not None:
            self.on_requeued(batch.get('experimentId'))
        if to_state in TERMINAL_STATES and batch.get('experimentId'):
            try:
                void_experiment_secrets_if_done(self.db, batch['experimentId'])
            except pymongo.errors.PyMongoError as e:  # the transition stands; the registrar's sweep voids later
                log.warning('experiment %s: its registry credentials are voided later (%s)', batch['experimentId'],
                            type(e).__name__)
        if from_state in ACTIVE_STATES and to_state not in ACTIVE_STATES and self.on_freed is not None:
            self.on_freed()
        return True


def _was_applied(db, batch_id, to_state, entry_time):
    doc = db[BATCHES].find_one({'_id': batch_id}, {'state': 1, 'history': {'$slice': -1}})
    return bool(doc and doc['state'] == to_state and doc.get('history') and doc['history'][-1]['time'] == entry_time)


# set on an experiment once its image credentials are voided (or it has none left to void): the sweep skips it
SECRETS_VOIDED = 'secretsVoided'


def void_experiment_secrets_if_done(db, experiment_id):
    """Once every batch of an experiment has ended, overwrite its image registry credentials.

    Runs after each terminal transition, so it asks the cheap questions first, of the experiment's document (one
    lookup by _id): does it still hold a protected value, and do its batch counters (cc_agency.batch_counts) say
    that every batch has ended? Only then is a batch of it looked for that has not ended: a query SecantusDB answers
    by reading every batch of the experiment that matches (0.5 s for 10,000), too much for each batch's end. A
    counter a dead process left one off keeps the credentials until the controller's start mends it. While its
    registration is under way, batches still to be inserted need the credentials (cc_agency.registration calls
    this again when it is complete). Returns True when the experiment holds no protected value any more.
    """
    oid = ObjectId(experiment_id)
    experiment = db[EXPERIMENTS].find_one({'_id': oid}, {'container.settings.image.auth': 1, COUNTS: 1,
                                                         'registrationComplete': 1, SECRETS_VOIDED: 1})
    if experiment is None or experiment.get(SECRETS_VOIDED):
        return True
    auth = experiment.get('container', {}).get('settings', {}).get('image', {}).get('auth')
    voided = replace_protected_image_auth(auth, VOIDED) if auth else auth
    if experiment.get('registrationComplete') is False:
        return False
    counted_unfinished = any(count > 0 for state, count in (experiment.get(COUNTS) or {}).items()
                             if state not in TERMINAL_STATES)
    if voided != auth and (counted_unfinished or db[BATCHES].count_documents(
            {'experimentId': experiment_id, 'state': {'$nin': list(TERMINAL_STATES)}}, limit=1)):
        return False
    db[EXPERIMENTS].update_one({'_id': oid}, {'$set': {'container.settings.image.auth': voided, SECRETS_VOIDED: True}}
                               if voided != auth else {'$set': {SECRETS_VOIDED: True}})
    return True


def void_ended_experiments(db):
    """The sweep: void the registry credentials of every ended experiment that still holds them (a void that failed
    after a batch's last transition, e.g. the database was unreachable). Returns how many were voided now."""
    voided = 0
    for experiment in list(db[EXPERIMENTS].find(
            {'container.settings.image.auth': {'$exists': True}, SECRETS_VOIDED: {'$ne': True},
             'registrationComplete': {'$ne': False}}, {'_id': 1})):
        if void_experiment_secrets_if_done(db, str(experiment['_id'])):
            voided += 1
    return voided
