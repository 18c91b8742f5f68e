"""Watch each node: learn its RAM and CPUs from the engine, notice when it goes away and when it comes back.

One thread per node probes its engine at a fixed interval with a short timeout, so a dead or hung engine
costs only its own thread. A state change is written to the `nodes` collection with its reason in the node's
history; a node that comes (back) online is reconciled with the database before new batches go there.
"""
import logging
import threading

from cc_agency.controller.engines import EngineError
from cc_agency.db import NODES, history_push, now

log = logging.getLogger(__name__)

ONLINE = 'online'
OFFLINE = 'offline'
PROBE_INTERVAL_S = 2.0


class NodeMonitor(threading.Thread):
    def __init__(self, controller, name):
        super().__init__(name='node-{}'.format(name), daemon=True)
        self.controller = controller
        self.name = name
        self.engine = controller.engines[name]
        self.state = None

    def run(self):
        while not self.controller.stopping.is_set():
            try:
                self.probe()
            except Exception:
                log.exception('node %s: probe crashed', self.name)
            self.controller.stopping.wait(PROBE_INTERVAL_S)

    def probe(self):
        try:
            if self.state == ONLINE:
                self.engine.ping()
                return
            info = self.engine.info()
        except Exception as e:  # any failure of the engine makes the node offline, never the thread die
            self._set_offline(str(e) if isinstance(e, EngineError) else '{}: {}'.format(type(e).__name__, e))
            return
        self._set_online(info)

    def _set_online(self, info):
        gpus = self.controller.conf['controller']['docker']['nodes'][self.name].get('hardware', {}).get('gpus', [])
        status = dict(info, state=ONLINE, gpus=gpus)
        self.controller.db[NODES].update_one(
            {'_id': self.name},
            {'$set': dict(status, lastSeen=now()), '$push': {'history': history_push(
                {'state': ONLINE, 'time': now(), 'debugInfo': None})}},
            upsert=True)
        log.info('node %s online: %d MiB RAM, %d CPUs, %d GPUs', self.name, info['ramMiB'], info['cpus'], len(gpus))
        self.controller.reconcile_node(self.name)
        self.state = ONLINE
        self.controller.set_node_status(self.name, status)

    def _set_offline(self, reason):
        self.engine.reset()
        if self.state == OFFLINE:
            return
        self.state = OFFLINE
        self.controller.set_node_status(self.name, {'state': OFFLINE})
        log.warning('node %s offline: %s', self.name, reason)
        self.controller.db[NODES].update_one(
            {'_id': self.name},
            {'$set': {'state': OFFLINE}, '$push': {'history': history_push(
                {'state': OFFLINE, 'time': now(), 'debugInfo': [reason]})}},
            upsert=True)
