"""One attempt of one batch on one node: create the container, inject agent and job, start, wait, record.

Each attempt runs in its own thread and is fenced by its attempt number: every state change it makes is a
compare-and-set on {_id, state, attempts}, and its output is stored only if no newer attempt stored one, so a
late or stale run can never decide the state of a newer attempt or of a cancelled batch. The thread blocks in
the engine's `wait()`, so the controller learns of the exit at once, without polling. If the engine connection
breaks while waiting, the thread waits for the engine to answer again (and then waits on) or for the node
monitor to declare the node lost (which fails the attempt for it); a connection hiccup never re-runs a batch
that is still running.
"""
import logging

import docker.errors
import pymongo.errors
from bson import ObjectId

from cc_agency import transitions
from cc_agency.controller import jobs
from cc_agency.controller.engines import ATTEMPT_LABEL, BATCH_LABEL, EXPERIMENT_LABEL, EngineError, ImageError
from cc_agency.db import BATCHES, BATCH_OUTPUT, EXPERIMENTS, now
from cc_agency.secrets import strip_protected_prefix
from cc_agency.states import PROCESSING, REGISTERED, SCHEDULED, SUCCEEDED, state_after_failure

log = logging.getLogger(__name__)

STDERR_TAIL_CHARS = 2000
ENGINE_RETRY_S = 1.0


class AttemptFailed(Exception):
    """This attempt failed; `permanent` when another attempt cannot succeed either."""

    def __init__(self, reasons, permanent=False, ccagent=None):
        super().__init__('; '.join(reasons))
        self.reasons = list(reasons)
        self.permanent = permanent
        self.ccagent = ccagent


def container_name(batch_id, attempt):
    return 'cc-agency-{}-{}'.format(batch_id, attempt)


def _tail(text, chars=STDERR_TAIL_CHARS):
    return text if len(text) <= chars else '...' + text[-chars:]


def outcome_from_exit(result, exit_code, oom_killed, ram_mib, container_stderr):
    """Decide an attempt's outcome from what the container left (pure). Returns the agent result on success.

    `oom_killed` is the engine's flag: it is also set when only a process inside (the command) was killed, so it
    explains any failure of the attempt.
    """
    if oom_killed and (exit_code != 0 or result is None or result['state'] != SUCCEEDED):
        raise AttemptFailed(['the container was killed for exceeding its memory limit of {} MiB (ram)'.format(ram_mib)],
                            permanent=True, ccagent=result)
    if result is None:
        reasons = ['the agent reported no result; the container exited with code {}'.format(exit_code)]
        if exit_code == 137:
            reasons[0] += ' (killed)'
        if container_stderr.strip():
            reasons.append('container stderr: {}'.format(_tail(container_stderr.strip())))
        raise AttemptFailed(reasons)
    if result['state'] != SUCCEEDED:
        raise AttemptFailed(result.get('debugInfo') or ['the agent reported failure'],
                            permanent=jobs.agent_failure_is_permanent(result), ccagent=result)
    return result


def agent_summary(result):
    """What of the agent's result goes into the batch history (stdout/stderr are stored apart)."""
    if not result:
        return None
    return {key: result.get(key) for key in ('state', 'command', 'process', 'inputs', 'outputs')}


class BatchRun:
    """A thread body: `BatchRun(controller, batch_id, node_name, attempt).run()`.

    With `container_id` it adopts a container that already runs (after a controller restart) and only waits.
    """

    def __init__(self, controller, batch_id, node_name, attempt, gpu_ids=(), container_id=None):
        self.controller = controller
        self.db = controller.db
        self.batch_id = batch_id
        self.node = node_name
        self.engine = controller.engines[node_name]
        self.attempt = attempt
        self.gpu_ids = tuple(gpu_ids)
        self.container_id = container_id
        self.batch = None
        self.experiment = None

    def run(self):
        try:
            if self._load() and self.batch['state'] in (SCHEDULED, PROCESSING):
                if self.container_id is None:
                    self._start()
                if self.container_id is not None:
                    self._wait_and_record()
        except Exception as e:
            log.exception('batch %s on node %s: attempt %d crashed in the controller', self.batch_id, self.node,
                          self.attempt)
            self._give_up(e)
        finally:
            self.controller.run_ended(self.batch_id, self.attempt)
            self.controller.wake()

    def _give_up(self, error):
        """Fail an attempt that crashed in the controller (a bad document, a bug), so that it is neither left
        behind nor resumed again and again; not while the controller stops (its successor resumes the attempt)."""
        if self.controller.stopping.is_set():
            return
        try:  # the error's type only: its message may quote a batch's values
            self.abandon('the controller failed while running this attempt ({})'.format(type(error).__name__),
                         remove=True)
        except Exception:
            log.exception('batch %s: the failure of attempt %d could not be recorded', self.batch_id, self.attempt)

    def abandon(self, reason, remove=False):
        """Fail this attempt without waiting for it (its node is lost or its container vanished)."""
        if self._load() and self.batch['state'] in (SCHEDULED, PROCESSING):
            self._fail(self.batch['state'], AttemptFailed([reason]), remove=remove)

    def _load(self):
        """Read the batch (this attempt's) and its experiment; False when the batch moved on to another attempt."""
        self.batch = self._persistently(lambda: self.db[BATCHES].find_one({'_id': self.batch_id, 'attempts': self.attempt}))
        if self.batch is None:
            return False
        self.experiment = self._persistently(
            lambda: self.db[EXPERIMENTS].find_one({'_id': ObjectId(self.batch['experimentId'])}))
        return True

    def _persistently(self, operation):
        """Run a database operation, waiting out a lost connection (the controller must not lose a decision)."""
        delay_s = 0.5
        while True:
            try:
                return operation()
            except pymongo.errors.ConnectionFailure as e:
                if self.controller.stopping.is_set():
                    raise
                log.warning('batch %s: database unreachable (%s), retrying', self.batch_id, type(e).__name__)
                self.controller.stopping.wait(delay_s)
                delay_s = min(delay_s * 2, 5)

    def _transition(self, from_state, to_state, **kwargs):
        done = transitions.transition(self.db, dict(self.batch, state=from_state), to_state,
                                      match={'attempts': self.attempt}, persistent=self.controller.stopping, **kwargs)
        if done and to_state != PROCESSING:
            self.controller.wake()  # the batch's RAM and GPUs are free: refill them before removing the container
        return done

    # --- phase 1: scheduled -> processing -------------------------------------------------------------------------
    def _start(self):
        if self.batch['state'] != SCHEDULED:
            return
        try:
            if self.experiment is None:
                raise AttemptFailed(['the experiment of this batch no longer exists'], permanent=True)
            self._create_and_start()
        except AttemptFailed as failure:
            self._fail(SCHEDULED, failure)
            return
        if not self._transition(SCHEDULED, PROCESSING, node=self.node):
            log.info('batch %s on node %s: attempt %d is no longer scheduled (cancelled or lost), removing its '
                     'container', self.batch_id, self.node, self.attempt)
            self._remove_container()
            self.container_id = None

    def _create_and_start(self):
        settings = self.experiment['container']['settings']
        image = settings['image']
        docker_conf = self.controller.conf['controller']['docker']
        node_conf = docker_conf['nodes'][self.node]
        try:
            self.engine.ensure_image(image['url'], strip_protected_prefix(image['auth']) if image.get('auth') else None,
                                     disable_pull=docker_conf.get('core_image', {}).get('disable_pull', False))
            with self.engine.start_slots:
                self._create_and_copy_and_start(image, settings, docker_conf, node_conf)
        except ImageError as e:
            raise AttemptFailed([str(e)], permanent=e.permanent)
        except EngineError as e:
            # the engine may have done what timed out: the attempt is released only once no container of it is left
            self._remove_container(surely=True)
            raise AttemptFailed([str(e)])
        except docker.errors.APIError as e:
            self._remove_container(surely=True)
            explanation = str(e.explanation or e)
            permanent = 'executable file not found' in explanation or 'no such file' in explanation.lower()
            reason = 'the container could not be started on node {}: {}'.format(self.node, explanation)
            if permanent:
                reason += ' (the image needs python3 on its PATH for the agent)'
            raise AttemptFailed([reason], permanent=permanent)
        log.info('batch %s: attempt %d started on node %s in container %s', self.batch_id, self.attempt, self.node,
                 self.container_id[:12])

    def _create(self, **settings):
        """Create this attempt's container; one left by an earlier controller process (which placed the attempt but
        died before it was processing, see reconcile.py) is removed first, so that the attempt runs once."""
        try:
            return self.engine.create_container(**settings)
        except docker.errors.APIError as e:
            if e.status_code != 409:
                raise
        log.info('batch %s: replacing the container of attempt %d left on node %s by an earlier controller process',
                 self.batch_id, self.attempt, self.node)
        self._remove_container(surely=True)
        return self.engine.create_container(**settings)

    def _create_and_copy_and_start(self, image, settings, docker_conf, node_conf):
        self.container_id = self._create(
            name=container_name(self.batch_id, self.attempt),
            image=image['url'],
            entrypoint=jobs.ENTRYPOINT,
            labels={BATCH_LABEL: str(self.batch_id), ATTEMPT_LABEL: str(self.attempt),
                    EXPERIMENT_LABEL: self.batch['experimentId']},
            ram_mib=settings['ram'],
            environment=node_conf.get('environment'),
            network=node_conf.get('network'),
            gpu_ids=self.gpu_ids,
            user=docker_conf['container_user'],
        )
        job = jobs.job_file(self.batch, self.experiment,
                            validate_connectors=not self.experiment.get('disableConnectorValidation'))
        archive = jobs.container_archive(job, self.controller.agent_source, uid=_uid(docker_conf['container_user']))
        self.engine.put_archive(self.container_id, '/', archive)
        self.engine.start(self.container_id)

    # --- phase 2: processing -> succeeded | failed | registered ------------------------------------------------------
    def _wait_for_exit(self):
        """The exit code, or None when the node was declared lost meanwhile (the monitor failed the attempt)."""
        while True:
            try:
                return self.engine.wait(self.container_id)
            except EngineError as e:
                if not self.controller.node_online(self.node):
                    log.info('batch %s: node %s lost while attempt %d ran (%s)', self.batch_id, self.node,
                             self.attempt, e)
                    return None
                self.controller.stopping.wait(ENGINE_RETRY_S)

    def _wait_and_record(self):
        self.controller.run_started(self.batch_id, self.attempt, self.node, self.container_id)
        try:
            exit_code = self._wait_for_exit()
            if exit_code is None:
                return
            state = self.engine.inspect(self.container_id)['State']
            stdout = self.engine.logs(self.container_id, stdout=True, stderr=False)
            container_stderr = self.engine.logs(self.container_id, stdout=False, stderr=True)
        except docker.errors.NotFound:
            self._fail(PROCESSING, AttemptFailed(
                ['the container was removed from outside while the batch ran on node {}'.format(self.node)]))
            return
        except (EngineError, docker.errors.APIError) as e:
            self._fail(PROCESSING, AttemptFailed(['lost node {} while reading the result: {}'.format(self.node, e)]),
                       remove=False)
            return
        result = jobs.parse_agent_result(stdout)
        self._store_output(result)
        try:
            result = outcome_from_exit(result, exit_code, bool(state.get('OOMKilled')),
                                       self.batch['requirements']['ramMiB'],
                                       container_stderr.decode('utf-8', errors='replace'))
        except AttemptFailed as failure:
            self._fail(PROCESSING, failure)
            return
        if not self._transition(PROCESSING, SUCCEEDED, node=self.node, ccagent=agent_summary(result)):
            log.info('batch %s: result of stale attempt %d on node %s ignored', self.batch_id, self.attempt, self.node)
        self._remove_container()

    def _store_output(self, result):
        """Keep the command's stdout/stderr, unless a newer attempt already stored its own."""
        document = {'attempt': self.attempt, 'time': now(),
                    'stdout': (result or {}).get('stdout', ''), 'stderr': (result or {}).get('stderr', '')}
        try:
            self._persistently(lambda: self.db[BATCH_OUTPUT].replace_one(
                {'_id': self.batch_id, 'attempt': {'$lte': self.attempt}}, document, upsert=True))
        except pymongo.errors.DuplicateKeyError:
            pass  # a newer attempt's output is there

    def _fail(self, from_state, failure, remove=True):
        execution_settings = (self.experiment or {}).get('execution', {}).get('settings', {})
        retry_allowed = self.experiment is not None and not self.experiment.get('disableRetry') and \
            execution_settings.get('retryIfFailed', True)
        attempts_to_fail = self.controller.conf['controller']['scheduling']['attempts_to_fail']
        to_state = state_after_failure(self.attempt, attempts_to_fail, retry_allowed, failure.permanent)
        debug_info = ['attempt {} on node {} failed: {}'.format(self.attempt, self.node, failure.reasons[0])]
        debug_info.extend(failure.reasons[1:])
        if to_state == REGISTERED:
            debug_info.append('retrying ({} of {} attempts used)'.format(self.attempt, attempts_to_fail))
        if self._transition(from_state, to_state, node=None if to_state == REGISTERED else self.node,
                            debug_info=debug_info, ccagent=agent_summary(failure.ccagent),
                            set_fields={'usedGPUs': None} if to_state == REGISTERED else None):
            log.info('batch %s on node %s: attempt %d failed (%s) -> %s', self.batch_id, self.node, self.attempt,
                     failure.reasons[0], to_state)
        if remove:
            self._remove_container()

    def _remove_container(self, surely=False):
        """Remove this attempt's container (by name when its creation timed out before we learnt its id).

        `surely`: keep trying while the node is online, so that the attempt is not retried elsewhere while a
        container of it may still start here.
        """
        target = self.container_id or container_name(self.batch_id, self.attempt)
        while True:
            try:
                self.engine.remove(target)
                return
            except (EngineError, docker.errors.APIError) as e:
                if not surely or not self.controller.node_online(self.node) or self.controller.stopping.is_set():
                    log.warning('batch %s: container %s on node %s not removed now (%s); it is removed when the '
                                'node is reconciled', self.batch_id, target[:24], self.node, e)
                    return
                self.controller.stopping.wait(ENGINE_RETRY_S)


def _uid(user):
    """The numeric uid of a `uid[:gid]` user setting (0 for a name: files then belong to root)."""
    uid = str(user).split(':')[0]
    return int(uid) if uid.isdigit() else 0
