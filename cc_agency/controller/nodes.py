"""Watch each node: learn its RAM, CPUs and GPUs from the engine, notice when it goes away and when it comes back.

One thread per node probes its engine at a fixed interval with a short timeout, so a dead or hung engine
costs only its own thread and is noticed within PROBE_INTERVAL_S + PROBE_TIMEOUT_S. A state change is written
to the `nodes` collection with its reason in the node's history. A node that stays offline for
NODE_LOST_GRACE_S loses its running attempts (they are failed and retried elsewhere); a node that comes (back)
online is reconciled with the database (its running containers adopted) before new batches go there, and
again every RECONCILE_INTERVAL_S. A node without `hardware.gpus` has its GPUs detected each time it comes (back)
online (`Engine.node_gpus`), before it gets batches.
"""
import logging
import threading
import time

from cc_agency.controller.engines import EngineError
from cc_agency.db import NODES, history_push, now
from cc_agency.states import NODE_OFFLINE as OFFLINE, NODE_ONLINE as ONLINE

log = logging.getLogger(__name__)

PROBE_INTERVAL_S = 1.0
PROBE_TIMEOUT_S = 3.0
RECONCILE_INTERVAL_S = 30.0
# how long the batches of an offline node wait for it before they are retried elsewhere: an engine that restarts
# (with --live-restore) or recovers from a hang within this time gets its containers adopted, not run twice
NODE_LOST_GRACE_S = 10.0


class NodeMonitor(threading.Thread):
    """The thread that watches the node of `engine`.

    :param board: the NodeBoard it keeps up to date for the scheduler
    :param reconcile: reconcile(node name), when the node comes (back) online and every RECONCILE_INTERVAL_S
    :param node_lost: node_lost(node name, reason), once the node stayed offline for NODE_LOST_GRACE_S
    """

    def __init__(self, engine, db, board, reconcile, node_lost, stopping):
        super().__init__(name='node-{}'.format(engine.name), daemon=True)
        self.engine = engine
        self.name = engine.name
        self.db = db
        self.board = board
        self.reconcile = reconcile
        self.node_lost = node_lost
        self.stopping = stopping
        self.state = None
        self.last_reconcile = 0.0
        self.offline_since = None
        self.offline_reason = None

    def run(self):
        while not self.stopping.is_set():
            try:
                self.probe()
            except Exception:  # e.g. the database is away: try again at the next probe
                log.exception('node %s: probe failed', self.name)
            self.stopping.wait(PROBE_INTERVAL_S)

    def probe(self):
        try:
            if self.state == ONLINE:
                self.engine.ping(PROBE_TIMEOUT_S)
                if time.monotonic() - self.last_reconcile > RECONCILE_INTERVAL_S:
                    self._reconcile()
                return
            info = self.engine.info()
            gpus = self.engine.node_gpus()  # configured, or detected at each connect (the node may have changed)
            self._reconcile()
        except Exception as e:  # whatever the engine does wrong, the node is offline; the thread goes on
            self._set_offline(str(e) if isinstance(e, EngineError) else '{}: {}'.format(type(e).__name__, e))
            return
        self._set_online(info, gpus)

    def _reconcile(self):
        self.reconcile(self.name)
        self.last_reconcile = time.monotonic()

    def _set_online(self, info, gpus):
        status = dict(info, state=ONLINE, gpus=gpus)
        self.db[NODES].update_one(
            {'_id': self.name},
            {'$set': dict(status, lastSeen=now()),
             '$push': {'history': history_push({'state': ONLINE, 'time': now(), 'debugInfo': None})}},
            upsert=True)
        log.info('node %s online: %d MiB RAM, %d CPUs, %d GPUs', self.name, info['ramMiB'], info['cpus'], len(gpus))
        self.state, self.offline_since = ONLINE, None
        self.board.set(self.name, status)

    def _set_offline(self, reason):
        self.engine.reset()
        if self.state == OFFLINE:
            if self.offline_since is not None and time.monotonic() - self.offline_since >= NODE_LOST_GRACE_S:
                self.node_lost(self.name, self.offline_reason)
                self.offline_since = None  # its batches are elsewhere now; this happens once per outage
            return
        log.warning('node %s offline: %s', self.name, reason)
        self.board.set(self.name, {'state': OFFLINE})  # no new batches go there from now on
        self.offline_since, self.offline_reason = time.monotonic(), reason
        self.db[NODES].update_one(
            {'_id': self.name},
            {'$set': {'state': OFFLINE},
             '$push': {'history': history_push({'state': OFFLINE, 'time': now(), 'debugInfo': [reason]})}},
            upsert=True)
        self.state = OFFLINE
