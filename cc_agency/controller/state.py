"""What the controller's threads share in memory (the read side Nomad's scheduler calls its State).

`NodeBoard`: each node's state and hardware as its monitor last saw it; the scheduler places only on what it says.
`RunRegistry`: the attempts this process runs or watches, so that reconciliation neither adopts nor removes them
and the scheduler can stop the containers of cancelled batches. Both are thread-safe and hand out copies.
"""
import threading

from cc_agency.states import NODE_ONLINE


class NodeBoard:
    """Nodes come and go with a reloaded configuration (`add`, `drain`, `remove`); a draining node is shown with
    `draining: True` whatever its monitor reports, so that nothing new is placed there."""

    def __init__(self, names, on_change=None):
        self._lock = threading.Lock()
        self._status = {name: {'state': None} for name in names}
        self._draining = set()
        self._on_change = on_change

    def snapshot(self):
        """{node name: {state, ramMiB, cpus, gpus, ..., draining}}."""
        with self._lock:
            return {name: dict(status, draining=name in self._draining) for name, status in self._status.items()}

    def set(self, name, status):
        with self._lock:
            if name not in self._status:
                return  # removed meanwhile: its monitor's last word is not news
            self._status[name] = dict(status)
        if self._on_change is not None:
            self._on_change()

    def add(self, name):
        with self._lock:
            self._status[name] = {'state': None}
            self._draining.discard(name)

    def drain(self, name):
        with self._lock:
            self._draining.add(name)

    def draining(self):
        with self._lock:
            return set(self._draining)

    def remove(self, name):
        with self._lock:
            self._status.pop(name, None)
            self._draining.discard(name)

    def cpus(self, name):
        """The node's CPUs as its monitor last saw them, None when not known."""
        with self._lock:
            return self._status.get(name, {}).get('cpus')

    def is_online(self, name):
        with self._lock:
            return self._status.get(name, {}).get('state') == NODE_ONLINE


class RunRegistry:
    def __init__(self):
        self._lock = threading.Lock()
        self._runs = {}  # batch id -> {'attempt', 'node', 'containerId', 'username'}

    def started(self, batch_id, attempt, node, container_id=None):
        with self._lock:
            known = self._runs.get(batch_id)
            username = known['username'] if known and known['attempt'] == attempt else None
            self._runs[batch_id] = {'attempt': attempt, 'node': node, 'containerId': container_id,
                                    'username': username}

    def owned_by(self, batch_id, attempt, username):
        """Record whose run it is (known once its thread read the batch)."""
        with self._lock:
            run = self._runs.get(batch_id)
            if run is not None and run['attempt'] == attempt:
                run['username'] = username

    def runs_of(self, username, node):
        """How many runs of `username` on `node` this process has."""
        with self._lock:
            return sum(1 for run in self._runs.values() if run['username'] == username and run['node'] == node)

    def ended(self, batch_id, attempt):
        with self._lock:
            if self._runs.get(batch_id, {}).get('attempt') == attempt:
                del self._runs[batch_id]

    def snapshot(self):
        """{batch id: {attempt, node, containerId, username}}."""
        with self._lock:
            return {batch_id: dict(run) for batch_id, run in self._runs.items()}
