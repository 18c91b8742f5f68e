"""The controller process: shared state and the threads that act on it.

Threads: the scheduler loop (woken over ZeroMQ by the broker, by finished runs and by its timer), the registrar
(turns the batches the broker staged into batch documents), a ZeroMQ listener, one monitor per node, one thread
per running batch attempt. Every loop catches and logs what goes wrong in one pass and goes on, so one bad
document or one failing engine never stops scheduling.
"""
import logging
import threading
import time

import pymongo.errors
import zmq

from cc_agency import registration
from cc_agency.controller import jobs
from cc_agency.controller.engines import Engine
from cc_agency.controller.nodes import NodeMonitor
from cc_agency.controller.runner import BatchRun
from cc_agency.controller.reconcile import reconcile_node
from cc_agency.controller.scheduler import schedule_pass
from cc_agency.db import BATCHES, ensure_indexes
from cc_agency.states import ACTIVE_STATES, CANCELLED

log = logging.getLogger(__name__)

JANITOR_INTERVAL_S = 60


class Controller:
    def __init__(self, conf, db):
        self.conf = conf
        self.db = db
        docker_conf = conf['controller']['docker']
        self.strategy = conf['controller']['scheduling']['strategy']
        self.pass_interval_s = conf['controller']['scheduling']['pass_interval_seconds']
        self.engines = {name: Engine(name, node_conf, docker_conf['api_timeout_seconds'])
                        for name, node_conf in docker_conf['nodes'].items()}
        self.agent_source = jobs.read_agent_source()
        self.stopping = threading.Event()
        self._wake = threading.Event()
        self._wake_registrar = threading.Event()
        self._orphans_removed_at = 0
        self._lock = threading.Lock()
        self.scheduling_lock = threading.RLock()  # decisions vs. reconciliation of a node
        self._node_status = {name: {'state': None} for name in self.engines}
        self._runs = {}  # batch id -> {'attempt', 'node', 'containerId'} of the attempts this process runs

    # --- shared state -------------------------------------------------------------------------------------------
    def wake(self):
        self._wake.set()
        self._wake_registrar.set()

    def node_status(self):
        with self._lock:
            return {name: dict(status) for name, status in self._node_status.items()}

    def set_node_status(self, name, status):
        with self._lock:
            self._node_status[name] = dict(status)
        self.wake()

    def launch(self, batch_id, node, attempt, gpu_ids=(), container_id=None):
        """Run (or, with container_id, adopt) one attempt of a batch in its own thread."""
        self.run_started(batch_id, attempt, node, container_id)  # tracked before its thread exists
        run = BatchRun(self, batch_id, node, attempt, gpu_ids, container_id)
        threading.Thread(target=run.run, name='batch-{}'.format(batch_id), daemon=True).start()

    def run_started(self, batch_id, attempt, node, container_id):
        with self._lock:
            self._runs[batch_id] = {'attempt': attempt, 'node': node, 'containerId': container_id}

    def run_ended(self, batch_id, attempt):
        with self._lock:
            if self._runs.get(batch_id, {}).get('attempt') == attempt:
                del self._runs[batch_id]

    def runs(self):
        with self._lock:
            return {batch_id: dict(run) for batch_id, run in self._runs.items()}

    def node_online(self, name):
        with self._lock:
            return self._node_status[name].get('state') == 'online'

    def reconcile_node(self, name):
        reconcile_node(self, name)

    def node_lost(self, name, reason):
        """Fail the attempts the database places on a node that stayed offline; they are retried elsewhere."""
        active = self.db[BATCHES].find({'node': name, 'state': {'$in': list(ACTIVE_STATES)}}, {'attempts': 1})
        for batch in list(active):
            BatchRun(self, batch['_id'], name, batch['attempts']).abandon(
                'node {} went offline: {}'.format(name, reason))

    # --- loops --------------------------------------------------------------------------------------------------
    def serve_forever(self):
        self._wait_for_database()
        threading.Thread(target=self._listen, name='zmq-listener', daemon=True).start()
        threading.Thread(target=self._loop, args=(self._wake_registrar, 'registration', self._register),
                         name='registrar', daemon=True).start()
        for name in self.engines:
            NodeMonitor(self, name).start()
        self._loop(self._wake, 'scheduling', self._schedule)

    def _schedule(self):
        with self.scheduling_lock:
            schedule_pass(self)
        self._stop_cancelled_runs()

    def _register(self):
        """One round of the registrar: finish the registrations the broker left to the controller, waking the
        scheduler after each chunk of batches; every JANITOR_INTERVAL_S, remove the chunks of registrations that
        broke off."""
        registration.register_pending(self.db, on_chunk=self._wake.set)
        if time.monotonic() - self._orphans_removed_at > JANITOR_INTERVAL_S:
            registration.remove_orphans(self.db)
            self._orphans_removed_at = time.monotonic()

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
            except Exception:
                log.exception('%s failed; the next round goes on', what)
                self.stopping.wait(1)

    def stop(self):
        self.stopping.set()
        self.wake()

    def _wait_for_database(self):
        while not self.stopping.is_set():
            try:
                ensure_indexes(self.db)
                return
            except pymongo.errors.ConnectionFailure as e:
                log.warning('waiting for the database (%s)', type(e).__name__)
                self.stopping.wait(2)

    def _listen(self):
        from cc_agency.config import wake_bind_url  # here, not at the top: keeps this change inside _listen
        url = wake_bind_url(self.conf)
        socket = zmq.Context.instance().socket(zmq.PULL)
        socket.setsockopt(zmq.LINGER, 0)
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
        runs = self.runs()
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
