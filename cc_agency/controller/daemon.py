"""The controller process: shared state and the threads that act on it.

Threads: the scheduler loop (woken over ZeroMQ by the broker, by finished runs and by its timer), the registrar
(turns the batches the broker staged into batch documents), a ZeroMQ listener, one monitor per node, one thread
per running batch attempt, the notifier (an outbox thread and one sender per notification hook,
cc_agency/controller/notifier.py), the image pruner while `image_prune_duration` is set and, with
`controller.metrics`, the metrics endpoint (metrics.py). Every loop catches and logs what goes wrong in one pass and
goes on, so one bad document or one failing engine never stops scheduling; the notifier and the metrics only ever
have events set or numbers added by the scheduling threads. SIGHUP asks for the configuration to be read again: the
scheduling loop applies its node changes (cc_agency/controller/reload.py) between two passes.
"""
import logging
import threading
import time

import pymongo.errors
import zmq

from cc_agency import batch_counts, loggable, registration, transitions
from cc_agency.config import ConfigError, image_pull_policy, load_config
from cc_agency.controller import jobs
from cc_agency.controller.connector_checks import CheckWatcher
from cc_agency.controller.engines import Engine
from cc_agency.controller.image_pruner import ImagePruner, ImageUses
from cc_agency.controller.metrics import Metrics
from cc_agency.controller.nodes import NodeMonitor
from cc_agency.controller.notifier import Notifier
from cc_agency.controller.queue_heads import QueueHeads
from cc_agency.controller.reconcile import Reconciler
from cc_agency.controller.reload import node_changes
from cc_agency.controller.runner import Launcher, RunContext
from cc_agency.controller.scheduler import Scheduler
from cc_agency.controller.state import NodeBoard, RunRegistry
from cc_agency.db import BATCHES, BY_STATE, NODES, ensure_indexes
from cc_agency.states import ACTIVE_STATES, CANCELLED
from cc_agency.timelimits import TimeLimits
from cc_agency.transitions import BatchLifecycle

log = logging.getLogger(__name__)

JANITOR_INTERVAL_S = 60
WAKE_MAX_BYTES = 64


class Controller:
    """Builds the workers from the configuration, hands each the few collaborators it uses, runs the loops."""

    def __init__(self, conf, db, conf_path=None):
        """`conf_path`: the file `conf` was read from, read again on `request_reload()`."""
        self.conf = conf
        self.db = db
        self.conf_path = conf_path
        self._monitor_stops = {}  # node name -> the Event that stops its monitor
        self._reload_requested = threading.Event()
        docker_conf = conf['controller']['docker']
        scheduling = conf['controller']['scheduling']
        self.pass_interval_s = scheduling['pass_interval_seconds']
        self.metrics = Metrics(node_names=docker_conf['nodes'])  # served only with controller.metrics
        self.engines = {name: self._engine(name, node_conf) for name, node_conf in docker_conf['nodes'].items()}
        self.stopping = threading.Event()
        self.notifier = Notifier(db, conf['controller'].get('notification_hooks'),
                                 conf['controller']['notification_retry_base_seconds'], self.stopping,
                                 on_given_up=self.metrics.delivery_given_up)
        self._wake = threading.Event()
        self._wake_registrar = threading.Event()
        self._orphans_removed_at = 0
        self._legacy_registered = False
        self.scheduling_lock = threading.RLock()  # decisions vs. reconciliation of a node
        self.nodes = NodeBoard(self.engines, on_change=self.wake)
        self.runs = RunRegistry()
        self.queue_heads = queue_heads = QueueHeads()
        self.lifecycle = BatchLifecycle(db, scheduling['attempts_to_fail'], persistent=self.stopping,
                                        on_freed=self.wake, on_requeued=queue_heads.forget)
        self.pruner = None
        if docker_conf['image_prune_duration'] > 0:
            self.pruner = ImagePruner(db, self.engines, self.nodes, self.stopping, docker_conf['image_prune_duration'],
                                      docker_conf['image_prune_interval_seconds'],
                                      keep=[docker_conf.get('core_image', {}).get('url')])
        self.launcher = Launcher(RunContext(
            db=db, lifecycle=self.lifecycle, runs=self.runs, nodes=self.nodes, stopping=self.stopping, wake=self.wake,
            container_user=docker_conf['container_user'],
            agent_source=jobs.read_agent_source(),
            time_limits=TimeLimits(scheduling.get('default_time_limit_seconds'),
                                   scheduling.get('max_time_limit_seconds')),
            record_run_s=self.metrics.run_ended,
            pull_policy=image_pull_policy(docker_conf),
            allow_fuse=docker_conf['allow_insecure_capabilities'],
            image_uses=ImageUses(db).record if self.pruner is not None else None,
            max_output_bytes=conf['controller']['max_output_bytes']), self.engines)
        self.reconciler = Reconciler(db, self.engines, self.runs, self.lifecycle, self.launcher.launch,
                                     self.scheduling_lock)
        self.scheduler = Scheduler(db, self.nodes, scheduling['strategy'], self.lifecycle, self._launch_placed,
                                   CheckWatcher(db, self.engines, self.stopping, self.wake).watch,
                                   policy=scheduling['policy'], user_weights=scheduling.get('user_weights'),
                                   default_concurrency_limit=scheduling['batch_concurrency_limit'],
                                   heads=queue_heads)

    def _engine(self, name, node_conf):
        return Engine(name, node_conf, self.conf['controller']['docker']['api_timeout_seconds'],
                      on_error=self.metrics.engine_error)

    def _launch_placed(self, *args, **kwargs):
        """What the scheduler calls for each batch it placed: counted, then launched."""
        self.metrics.placed()
        self.launcher.launch(*args, **kwargs)

    def wake(self):
        """Something changed (a wake-up message, an attempt ended, a node changed): the scheduler, the registrar
        and the notifier look again. Only sets events, so it never blocks its caller."""
        self._wake.set()
        self._wake_registrar.set()
        self.notifier.wake()

    # --- loops --------------------------------------------------------------------------------------------------
    def serve_forever(self):
        self._wait_for_database()
        metrics_conf = self.conf['controller'].get('metrics')
        if metrics_conf:
            self.metrics.watch_cluster(self.db, self.nodes)
            try:
                self.metrics.serve(metrics_conf['bind_host'], metrics_conf['bind_port'])
            except OSError as e:  # scheduling goes on without them: batches matter more than their numbers
                log.error('metrics not served: cannot listen on %s:%d (%s)', metrics_conf['bind_host'],
                          metrics_conf['bind_port'], e.strerror or e)
        self.notifier.start()
        threading.Thread(target=self._listen, name='zmq-listener', daemon=True).start()
        threading.Thread(target=self._loop, args=(self._wake_registrar, 'registration', self._register),
                         name='registrar', daemon=True).start()
        for name in list(self.engines):
            self._start_monitor(name)
        if self.pruner is not None:
            threading.Thread(target=self.pruner.run, name='image-pruner', daemon=True).start()
        self._loop(self._wake, 'scheduling', self._schedule)

    def _start_monitor(self, name):
        stop = threading.Event()
        self._monitor_stops[name] = stop
        NodeMonitor(self.engines[name], self.db, self.nodes, self.reconciler.reconcile, self.reconciler.node_lost,
                    stop).start()

    def _stop_monitor(self, name):
        stop = self._monitor_stops.pop(name, None)
        if stop is not None:
            stop.set()

    def _schedule(self):
        with self.scheduling_lock:
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                self._reload()
            self._remove_drained_nodes()
            started = time.perf_counter()
            if self.scheduler.run_pass():
                self._wake_registrar.set()  # the queues shrank: the registrar inserts what they need next
            self.metrics.scheduling_pass_took(time.perf_counter() - started)
        self._stop_cancelled_runs()

    # --- reloading the configuration ----------------------------------------------------------------------------
    def request_reload(self):
        """SIGHUP: only flags the request (a signal handler must not take locks); the scheduling loop applies it."""
        self._reload_requested.set()
        self._wake.set()

    def _reload(self):
        """Apply the node changes of the configuration file as it is now; a wrong file changes nothing."""
        try:
            new_conf = load_config(self.conf_path)
        except ConfigError as e:
            log.error('reload refused, the configuration stays as it was: %s', e)
            return
        docker_conf = self.conf['controller']['docker']
        new_nodes = new_conf['controller']['docker']['nodes']
        changes = node_changes(docker_conf['nodes'], new_nodes)
        for name in changes.removed:
            log.info('reload: node %s removed from the configuration, draining it (its running batches finish)', name)
            self.nodes.drain(name)
        for name in changes.added + changes.changed:
            log.info('reload: node %s %s', name, 'changed' if name in changes.changed else 'added')
            self._stop_monitor(name)  # a changed node, or one added back while it was draining
            self.engines[name] = self._engine(name, new_nodes[name])
            self.nodes.add(name)
            self._start_monitor(name)
        docker_conf['nodes'] = new_nodes
        log.info('reload: %d node(s) added, %d changed, %d draining', len(changes.added), len(changes.changed),
                 len(changes.removed))

    def _remove_drained_nodes(self):
        """A draining node whose batches have all ended leaves: monitor stopped, document removed."""
        for name in self.nodes.draining():
            if any(run['node'] == name for run in self.runs.snapshot().values()):
                continue
            if self.db[BATCHES].count_documents({'node': name, 'state': {'$in': list(ACTIVE_STATES)}}, limit=1,
                                                hint=BY_STATE):
                continue
            self._stop_monitor(name)
            self.nodes.remove(name)
            self.engines.pop(name, None)
            self.db[NODES].delete_one({'_id': name})
            log.info('node %s drained and removed', name)

    def _register(self):
        """One round of the registrar: insert the staged batches the queues need (cc_agency.registration), waking
        the scheduler after each chunk; every JANITOR_INTERVAL_S, remove the chunks of registrations that
        broke off. The first round inserts what an earlier version staged."""
        if not self._legacy_registered:
            registration.register_legacy(self.db, on_chunk=self._chunk_inserted)
            self._legacy_registered = True
        registration.register_pending(self.db, on_chunk=self._chunk_inserted)
        if time.monotonic() - self._orphans_removed_at > JANITOR_INTERVAL_S:
            registration.remove_orphans(self.db)
            transitions.void_ended_experiments(self.db)  # voids that a database hiccup left undone
            self._orphans_removed_at = time.monotonic()

    def _chunk_inserted(self, experiment_id):
        """The registrar inserted a chunk of the experiment's batches: they may lie below the head of its queue that
        the scheduler keeps (cc_agency/controller/queue_heads.py), so that head goes, and the scheduler looks."""
        self.queue_heads.forget(str(experiment_id))
        self._wake.set()

    def _loop(self, wake, what, step):
        """Run `step` whenever `wake` is set or pass_interval_s passed, until stopping; one failing round is
        logged and the next goes on."""
        while not self.stopping.is_set():
            wake.wait(self.pass_interval_s)
            wake.clear()
            if self.stopping.is_set():
                break
            try:
                step()
            except pymongo.errors.ConnectionFailure as e:
                log.warning('database unreachable (%s), %s resumes when it is back', type(e).__name__, what)
                self.stopping.wait(1)
            except Exception as e:  # no write's payload in the log (loggable)
                log.error('%s failed; the next round goes on\n%s', what, loggable.traceback_text(e))
                self.stopping.wait(1)

    def stop(self):
        self.stopping.set()
        for name in list(self._monitor_stops):
            self._stop_monitor(name)
        self.wake()

    def _wait_for_database(self):
        while not self.stopping.is_set():
            try:
                ensure_indexes(self.db)
                # before any thread of this process changes a batch: counters a dead process left one off are mended
                recounted = batch_counts.recount_unfinished(self.db)
                log.info('batch counts of %d experiments with unfinished batches checked', recounted)
                return
            except pymongo.errors.ConnectionFailure as e:
                log.warning('waiting for the database (%s)', type(e).__name__)
                self.stopping.wait(2)

    def _listen(self):
        from cc_agency.config import wake_bind_url  # here, not at the top: keeps this change inside _listen
        url = wake_bind_url(self.conf)
        socket = zmq.Context.instance().socket(zmq.PULL)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.MAXMSGSIZE, WAKE_MAX_BYTES)  # a wake-up carries no data: a peer sending more is dropped
        socket.bind(url)
        log.info('listening for wake-ups on %s', url)
        while not self.stopping.is_set():
            try:
                if socket.poll(500):
                    while socket.poll(0):
                        socket.recv()
                    self.wake()
            except zmq.ZMQError:
                log.exception('zmq listener error')
                self.stopping.wait(1)

    def _stop_cancelled_runs(self):
        runs = self.runs.snapshot()
        if not runs:
            return
        for batch in self.db[BATCHES].find({'_id': {'$in': list(runs)}, 'state': CANCELLED}, {'_id': 1}):
            run = runs[batch['_id']]
            if run['containerId']:
                log.info('batch %s cancelled: removing its container on node %s', batch['_id'], run['node'])
                try:
                    self.engines[run['node']].remove(run['containerId'])
                except Exception as e:
                    log.warning('batch %s: could not remove container on node %s: %s', batch['_id'], run['node'], e)
