"""One attempt of one batch on one node: create the container, inject agent and job, start, wait, record.

Each attempt runs in its own thread and is fenced by its attempt number: every state change it makes is a
compare-and-set on {_id, state, attempts}, and its output is stored only if no newer attempt stored one, so a
late or stale run can never decide the state of a newer attempt or of a cancelled batch. The thread blocks in
the engine's `wait()`, so the controller learns of the exit at once, without polling. If the engine connection
breaks while waiting, the thread waits for the engine to answer again (and then waits on) or for the node
monitor to declare the node lost (which fails the attempt for it); a connection hiccup never re-runs a batch
that is still running. A run with a wall-clock limit (cc_agency/timelimits.py) has a timer, counted from
`processing`, that removes its container when the limit passes; the wait then ends and the batch fails for good
(`BatchLifecycle.time_out`), unless the run had exited by itself first.

Whatever of an attempt is stored or logged (debugInfo, the agent's messages, the container's stderr tail, the
command's stdout/stderr, exception messages) passes through the batch's `Masker` first: connectors and registries
quote the values they were given, and only here are the batch's protected keys known (the agent sees them
without their `_`). Container output is read with a byte limit (`Engine.log_tail`), never whole.

The command's stdout and stderr are files in the container (the agent's result names them, and carries those of
at most 64 KiB itself): after the exit a larger one is read from the engine's tar stream up to
`controller.max_output_bytes` (`Engine.file_head`); each is masked as a whole (a value cut by the limit too) and kept
as the batch's output (cc_agency/batch_output.py), before the container is removed; only the latest attempt's
output is kept. A run that succeeded costs the engine a wait, one read of the container's stdout and the
removal: the memory flag (inspect) and the container's stderr only explain a failure and are read only then.
"""
import logging
import threading
from dataclasses import dataclass

import docker.errors
from bson import ObjectId

from cc_agency import batch_output, loggable
from cc_agency.config import PULL_IF_NOT_PRESENT
from cc_agency.controller import fairshare, fuse, jobs
from cc_agency.controller.engines import ATTEMPT_LABEL, BATCH_LABEL, EXPERIMENT_LABEL, EngineError, ImageError
from cc_agency.controller.state import NodeBoard, RunRegistry
from cc_agency.db import BATCHES, EXPERIMENTS, now
from cc_agency.secrets import Masker, strip_protected_prefix
from cc_agency.states import PROCESSING, SCHEDULED, SUCCEEDED
from cc_agency.timelimits import TimeLimits
from cc_agency.transitions import AttemptFailed, BatchLifecycle

log = logging.getLogger(__name__)

STDERR_TAIL_CHARS = 2000
STDERR_READ_BYTES = 4 * STDERR_TAIL_CHARS  # more than the tail shown: a protected value cut by the read is masked
ENGINE_RETRY_S = 1.0


@dataclass(frozen=True)
class RunContext:
    """What every attempt uses, besides its node's engine: handed to each BatchRun by the Launcher."""
    db: object
    lifecycle: BatchLifecycle
    runs: RunRegistry
    nodes: NodeBoard
    stopping: threading.Event
    wake: object  # callable: the scheduler should look again (an attempt ended)
    container_user: str
    agent_source: bytes
    time_limits: TimeLimits = TimeLimits()  # the operator's default and cap of runs' wall-clock limits
    record_run_s: object = None  # callable(seconds from processing to the end of a run): the metrics' histogram
    pull_policy: str = PULL_IF_NOT_PRESENT  # controller.docker.image_pull_policy (config.image_pull_policy)
    allow_fuse: bool = False  # controller.docker.allow_insecure_capabilities: batches that mount get FUSE (fuse.py)
    image_uses: object = None  # callable(node, image url): records a use for the pruner (image_pruner.py), or None
    max_output_bytes: int = 16 * 1024 * 1024  # controller.max_output_bytes: what of each command stream is kept


def container_name(batch_id, attempt):
    return 'cc-agency-{}-{}'.format(batch_id, attempt)


def _tail(text, chars=STDERR_TAIL_CHARS):
    return text if len(text) <= chars else '...' + text[-chars:]


def masked_agent_result(result, masker):
    """The agent's result with every protected value masked (pure)."""
    return None if result is None else masker.data(result)


def masked_stream(data, masker, cut):
    """The head of a command stream with every protected value masked, also one that `cut` (the byte limit) cut
    (pure). Bytes that are not UTF-8 stay as they are (surrogateescape), so binary output is kept unchanged."""
    text = data.decode('utf-8', errors='surrogateescape')
    return masker.text(text, cut_end=cut).encode('utf-8', errors='surrogateescape')


def masked_failure(failure, masker):
    """The same failure with its reasons and the agent's result masked (pure)."""
    return AttemptFailed([masker.text(str(reason)) for reason in failure.reasons], permanent=failure.permanent,
                         ccagent=masked_agent_result(failure.ccagent, masker))


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


class Launcher:
    """Runs (or, with container_id, adopts) one attempt of a batch in its own thread."""

    def __init__(self, context, engines):
        self.context = context
        self.engines = engines

    def launch(self, batch_id, node, attempt, gpu_ids=(), container_id=None):
        self.context.runs.started(batch_id, attempt, node, container_id)  # tracked before its thread exists
        run = BatchRun(self.context, self.engines[node], batch_id, attempt, gpu_ids, container_id)
        threading.Thread(target=run.run, name='batch-{}'.format(batch_id), daemon=True).start()


class BatchRun:
    """A thread body: one attempt of one batch on the node of `engine`.

    With `container_id` it adopts a container that already runs (after a controller restart) and only waits.
    """

    def __init__(self, context, engine, batch_id, attempt, gpu_ids=(), container_id=None):
        self.context = context
        self.db = context.db
        self.lifecycle = context.lifecycle
        self.engine = engine
        self.node = engine.name
        self.batch_id = batch_id
        self.attempt = attempt
        self.gpu_ids = tuple(gpu_ids)
        self.container_id = container_id
        self.batch = None
        self.experiment = None
        self.masker = Masker([])
        self.limit_s = None
        self._exit_lock = threading.Lock()  # the run's own exit vs. its time limit: whichever comes first decides
        self._exited = False
        self._timed_out = False

    def run(self):
        try:
            if self._load() and self.batch['state'] in (SCHEDULED, PROCESSING):
                if self.container_id is None:
                    self._start()
                if self.container_id is not None:
                    self._wait_and_record()
        except Exception as e:
            log.error('batch %s on node %s: attempt %d crashed in the controller\n%s', self.batch_id, self.node,
                      self.attempt, loggable.traceback_text(e, self.masker.text))
            self._give_up(e)
        finally:
            self.context.runs.ended(self.batch_id, self.attempt)
            self.context.wake()

    def _give_up(self, error):
        """Fail an attempt that crashed in the controller (a bad document, a bug), so that it is neither left
        behind nor resumed again and again; not while the controller stops (its successor resumes the attempt)."""
        if self.context.stopping.is_set():
            return
        try:  # the error's type only: its message may quote a batch's values
            self.lifecycle.abandon(self.batch_id, self.attempt, self.node,
                                   'the controller failed while running this attempt ({})'.format(type(error).__name__))
            self._remove_container()
        except Exception as e:
            log.error('batch %s: the failure of attempt %d could not be recorded (%s)', self.batch_id, self.attempt,
                      loggable.describe(e, self.masker.text))

    def _load(self):
        """Read the batch (this attempt's) and its experiment; False when the batch moved on to another attempt."""
        self.batch = self.lifecycle.persistently(lambda: self.db[BATCHES].find_one({'_id': self.batch_id, 'attempts': self.attempt}))
        if self.batch is None:
            return False
        self.experiment = self.lifecycle.persistently(
            lambda: self.db[EXPERIMENTS].find_one({'_id': ObjectId(self.batch['experimentId'])}))
        self.masker = Masker.for_batch(self.batch, self.experiment)
        self.context.runs.owned_by(self.batch_id, self.attempt, self.batch.get('username'))
        return True

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
        if not self.lifecycle.start(self.batch, self.attempt, self.node):
            log.info('batch %s on node %s: attempt %d is no longer scheduled (cancelled or lost), removing its '
                     'container', self.batch_id, self.node, self.attempt)
            self._remove_container()
            self.container_id = None

    def _create_and_start(self):
        settings = self.experiment['container']['settings']
        image = settings['image']
        with_fuse = self._needs_fuse()
        try:
            self._ensure_image(image)
            with self.engine.start_slots.slot(self._user_runs_here()):
                self._create_and_copy_and_start(image, settings, with_fuse)
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

    def _user_runs_here(self):
        """How many batches this batch's user runs on its node in this controller, this one included."""
        return self.context.runs.runs_of(self.batch.get('username'), self.node)

    def _needs_fuse(self):
        """Whether this batch mounts an input with FUSE (fuse.py); a permanent failure when it does on an agency
        that does not allow it."""
        mounted = fuse.mounted_inputs(self.batch)
        reason = fuse.refusal(mounted, self.context.allow_fuse)
        if reason is not None:
            raise AttemptFailed([reason], permanent=True)
        if mounted:
            log.info('batch %s: input(s) %s mounted with FUSE: its container on node %s gets /dev/fuse and %s',
                     self.batch_id, ', '.join(mounted), self.node, ', '.join(fuse.FUSE_CAPABILITIES))
        return bool(mounted)

    def _ensure_image(self, image):
        """The batch's image on the node, by the agency's pull policy; the use is recorded for the pruner."""
        self.engine.ensure_image(image['url'], strip_protected_prefix(image['auth']) if image.get('auth') else None,
                                 pull_policy=self.context.pull_policy)
        if self.context.image_uses is not None:
            self.context.image_uses(self.node, image['url'])

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

    def _create_and_copy_and_start(self, image, settings, with_fuse=False):
        self.container_id = self._create(
            name=container_name(self.batch_id, self.attempt),
            image=image['url'],
            entrypoint=jobs.ENTRYPOINT,
            labels={BATCH_LABEL: str(self.batch_id), ATTEMPT_LABEL: str(self.attempt),
                    EXPERIMENT_LABEL: self.batch['experimentId']},
            ram_mib=settings['ram'],
            environment=self.engine.environment,
            network=self.engine.network,
            gpu_ids=self.gpu_ids,
            user=self.context.container_user,
            fuse=with_fuse,
            cpu_shares=fairshare.cpu_shares(self._user_runs_here(), self.context.nodes.cpus(self.node)),
        )
        job = jobs.job_file(self.batch, self.experiment,
                            validate_connectors=not self.experiment.get('disableConnectorValidation'))
        archive = jobs.container_archive(job, self.context.agent_source, uid=_uid(self.context.container_user))
        self.engine.put_archive(self.container_id, '/', archive)
        self.engine.start(self.container_id)

    # --- phase 2: processing -> succeeded | failed | registered ------------------------------------------------------
    def _wait_for_exit(self):
        """The exit code, or None when the node was declared lost meanwhile (the monitor failed the attempt)."""
        while True:
            try:
                return self.engine.wait(self.container_id)
            except EngineError as e:
                if not self.context.nodes.is_online(self.node):
                    log.info('batch %s: node %s lost while attempt %d ran (%s)', self.batch_id, self.node,
                             self.attempt, e)
                    return None
                self.context.stopping.wait(ENGINE_RETRY_S)

    # --- the wall-clock limit -----------------------------------------------------------------------------------
    def _arm_time_limit(self, processing_since):
        """Start the timer of the run's time limit, counted from `processing_since`; None when the run has no
        limit."""
        self.limit_s = self.context.time_limits.for_experiment(self.experiment)
        if self.limit_s is None:
            return None
        remaining_s = processing_since + self.limit_s - now()
        timer = threading.Timer(max(0.0, remaining_s), self._expire)
        timer.daemon = True
        timer.start()
        return timer

    def _started_processing_at(self):
        """When this attempt became `processing`: just now, when this thread started it (the batch was read while
        scheduled), or, for a run adopted after a controller restart, as its history says, so that a restart does
        not give a run a fresh limit."""
        if self.batch['state'] == PROCESSING:
            times = [entry['time'] for entry in self.batch.get('history') or () if entry.get('state') == PROCESSING]
            if times:
                return times[-1]
        return now()

    def _expire(self):
        with self._exit_lock:
            if self._exited:
                return
            self._timed_out = True
        log.info('batch %s on node %s: attempt %d exceeded its time limit of %d s, removing its container',
                 self.batch_id, self.node, self.attempt, self.limit_s)
        try:
            self.engine.remove(self.container_id)  # ends the wait
        except (EngineError, docker.errors.APIError) as e:
            log.warning('batch %s: container on node %s not removed at its time limit (%s); retried when the wait '
                        'ends', self.batch_id, self.node, e)

    def _exited_in_time(self):
        """Called once the wait is over: True when the run ended by itself (its limit can no longer strike)."""
        with self._exit_lock:
            self._exited = True
            return not self._timed_out

    def _time_out(self):
        self.lifecycle.time_out(self.batch, self.attempt, self.node, self.limit_s)
        self._remove_container()

    def _wait_and_record(self):
        self.context.runs.started(self.batch_id, self.attempt, self.node, self.container_id)
        processing_since = self._started_processing_at()
        timer = self._arm_time_limit(processing_since)
        try:
            self._wait_and_record_within_limit()
        finally:
            if timer is not None:
                timer.cancel()
        if self.context.record_run_s is not None:
            self.context.record_run_s(now() - processing_since)

    def _wait_and_record_within_limit(self):
        try:
            exit_code = self._wait_for_exit()
            if not self._exited_in_time():
                self._time_out()
                return
            if exit_code is None:
                return
            stdout, stdout_cut = self.engine.log_tail(self.container_id, 'stdout', jobs.RESULT_MAX_BYTES)
            raw_result = jobs.parse_agent_result(stdout)
            # what only explains a failure is read only then: the memory flag, the container's own stderr
            succeeded = exit_code == 0 and raw_result is not None and raw_result['state'] == SUCCEEDED
            oom_killed = not succeeded and bool(self.engine.inspect(self.container_id)['State'].get('OOMKilled'))
            stderr_bytes, stderr_cut = b'', False
            if raw_result is None:
                stderr_bytes, stderr_cut = self.engine.log_tail(self.container_id, 'stderr', STDERR_READ_BYTES)
        except docker.errors.NotFound:
            if not self._exited_in_time():
                self._time_out()
                return
            self._fail(PROCESSING, AttemptFailed(
                ['the container was removed from outside while the batch ran on node {}'.format(self.node)]))
            return
        except (EngineError, docker.errors.APIError) as e:
            if not self._exited_in_time():
                self._time_out()
                return
            self._fail(PROCESSING, AttemptFailed(['lost node {} while reading the result: {}'.format(self.node, e)]),
                       remove=False)
            return
        carried_streams = jobs.pop_inline_streams(raw_result)
        result = masked_agent_result(raw_result, self.masker)
        try:
            self._store_output(jobs.stream_files(raw_result), carried_streams)
        except (EngineError, docker.errors.APIError) as e:
            self._fail(PROCESSING, AttemptFailed(['lost node {} while reading the output: {}'.format(self.node, e)]),
                       remove=False)
            return
        container_stderr = self.masker.text(stderr_bytes.decode('utf-8', errors='replace'), cut_start=stderr_cut)
        if result is None and stdout_cut:
            container_stderr += '\n(the container wrote more than {} bytes on stdout)'.format(jobs.RESULT_MAX_BYTES)
        try:
            result = outcome_from_exit(result, exit_code, oom_killed,
                                       self.batch['requirements']['ramMiB'], container_stderr)
        except AttemptFailed as failure:
            self._fail(PROCESSING, failure)
            return
        if not self.lifecycle.succeed(self.batch, self.attempt, self.node, result):
            log.info('batch %s: result of stale attempt %d on node %s ignored', self.batch_id, self.attempt, self.node)
        self._remove_container()

    def _store_output(self, files, carried):
        """Keep the command's stdout/stderr (`carried` in the agent's result when small, else read from the files in
        the container the agent named; none when the agent stopped before the command), masked, unless a newer
        attempt already stored its own."""
        limit_bytes = self.context.max_output_bytes
        streams = {}
        for stream, path in files.items():
            if stream in carried:
                data, written_bytes = carried[stream][:limit_bytes + 1], len(carried[stream])
            else:
                data, written_bytes = self.engine.file_head(self.container_id, path, limit_bytes + 1)
            cut = len(data) > limit_bytes
            streams[stream] = (masked_stream(data[:limit_bytes], self.masker, cut), written_bytes or 0, cut)
        kept = self.lifecycle.persistently(lambda: batch_output.store(
            self.db, self.batch_id, self.attempt, streams, limit_bytes))
        if not kept:
            log.info('batch %s: output of stale attempt %d on node %s not kept', self.batch_id, self.attempt, self.node)

    def _fail(self, from_state, failure, remove=True):
        self.lifecycle.fail_attempt(dict(self.batch, state=from_state), self.experiment, self.attempt, self.node,
                                    masked_failure(failure, self.masker))
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
                if not surely or not self.context.nodes.is_online(self.node) or self.context.stopping.is_set():
                    log.warning('batch %s: container %s on node %s not removed now (%s); it is removed when the '
                                'node is reconciled', self.batch_id, target[:24], self.node, self.masker.text(str(e)))
                    return
                self.context.stopping.wait(ENGINE_RETRY_S)


def _uid(user):
    """The numeric uid of a `uid[:gid]` user setting (0 for a name: files then belong to root)."""
    uid = str(user).split(':')[0]
    return int(uid) if uid.isdigit() else 0
