"""The controller's Prometheus metrics (`controller.metrics`): their names, defined once, and how they are served.

Why a recorder object: the workers are handed only the narrow method they call (`placed`, `scheduling_pass_took`,
`run_ended`, `engine_error`, `delivery_given_up`), never the registry; each `Metrics` has its own
CollectorRegistry (several controllers may run in one test process), so a controller without `controller.metrics`
records into a registry nobody reads, at the cost of a few additions.

What describes the cluster as it is (batches and nodes by state, RAM held per node, pending notifications) is read
when Prometheus scrapes, not kept up to date: batches by state from the experiments' counters
(cc_agency/batch_counts.py: one projected read of the experiments, never of their batches), RAM from the active
batches (as a scheduling pass reads them), nodes from the controller's NodeBoard and the cordoned nodes. A scrape
reuses what was read in the last CLUSTER_CACHE_S, so scraping often costs the database nothing more.

Labels hold only state names and the node names of the configuration: no batch input, no secret.
"""
import logging
import threading
import time

import pymongo.errors
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

from cc_agency import loggable
from cc_agency.batch_counts import batch_counts, zero_counts
from cc_agency.cordon import cordoned_nodes
from cc_agency.db import BATCHES, EXPERIMENTS, NOTIFICATIONS
from cc_agency.notifications import PENDING
from cc_agency.states import ACTIVE_STATES, ALL_STATES, NODE_OFFLINE, NODE_ONLINE

log = logging.getLogger(__name__)

BATCHES_METRIC = 'ccagency_batches'
NODES_METRIC = 'ccagency_nodes'
NODE_RAM_USED_METRIC = 'ccagency_node_ram_used_mib'
PLACEMENTS_METRIC = 'ccagency_placements'  # a counter: exposed as ccagency_placements_total
SCHEDULING_PASS_METRIC = 'ccagency_scheduling_pass_seconds'
BATCH_RUN_METRIC = 'ccagency_batch_run_seconds'
ENGINE_ERRORS_METRIC = 'ccagency_engine_errors'  # ccagency_engine_errors_total
NOTIFICATIONS_PENDING_METRIC = 'ccagency_notifications_pending'
NOTIFICATIONS_GIVEN_UP_METRIC = 'ccagency_notifications_given_up'  # ccagency_notifications_given_up_total

# a node is counted in the first of these that applies
NODE_DRAINING, NODE_CORDONED, NODE_UNKNOWN = 'draining', 'cordoned', 'unknown'
NODE_STATES = (NODE_DRAINING, NODE_CORDONED, NODE_ONLINE, NODE_OFFLINE, NODE_UNKNOWN)

PASS_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
RUN_BUCKETS_S = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 24 * 3600, 7 * 24 * 3600)
CLUSTER_CACHE_S = 2.0


def node_state(status, cordoned):
    """The state a node is counted in (pure): draining, cordoned (online, nothing new placed), online, offline,
    unknown (not probed yet)."""
    if status.get('draining'):
        return NODE_DRAINING
    if status.get('state') == NODE_ONLINE:
        return NODE_CORDONED if cordoned else NODE_ONLINE
    if status.get('state') == NODE_OFFLINE:
        return NODE_OFFLINE
    return NODE_UNKNOWN


class Metrics:
    """The recorder the workers are handed, and the registry a scrape reads."""

    def __init__(self, node_names=()):
        self.registry = CollectorRegistry(auto_describe=False)
        self._placements = Counter(PLACEMENTS_METRIC, 'Batches placed on a node (registered -> scheduled)',
                                   registry=self.registry)
        self._pass_s = Histogram(SCHEDULING_PASS_METRIC, 'Duration of one scheduling pass', buckets=PASS_BUCKETS_S,
                                 registry=self.registry)
        self._run_s = Histogram(BATCH_RUN_METRIC, 'Duration of batch attempts from processing to their end',
                                buckets=RUN_BUCKETS_S, registry=self.registry)
        self._engine_errors = Counter(ENGINE_ERRORS_METRIC, 'Calls to a node\'s engine that failed (unreachable, '
                                      'timed out)', ['node'], registry=self.registry)
        self._given_up = Counter(NOTIFICATIONS_GIVEN_UP_METRIC, 'Notification deliveries given up',
                                 registry=self.registry)
        for name in node_names:  # a node without errors shows 0, not nothing
            self._engine_errors.labels(node=name)
        self._server = None

    # --- what the workers call --------------------------------------------------------------------------------
    def placed(self):
        self._placements.inc()

    def scheduling_pass_took(self, seconds):
        self._pass_s.observe(seconds)

    def run_ended(self, seconds):
        self._run_s.observe(max(0.0, seconds))

    def engine_error(self, node):
        self._engine_errors.labels(node=node).inc()

    def delivery_given_up(self):
        self._given_up.inc()

    # --- the cluster as it is, and the endpoint -----------------------------------------------------------------
    def watch_cluster(self, db, nodes):
        """Report batches, nodes, RAM and pending notifications of `db` and the NodeBoard `nodes` at each scrape."""
        self.registry.register(ClusterCollector(db, nodes))

    def serve(self, host, port):
        """Serve /metrics on host:port in a thread of its own (prometheus_client's HTTP server)."""
        self._server = start_http_server(port, addr=host, registry=self.registry)
        log.info('metrics served at http://%s:%d/metrics', host, port)


class ClusterCollector:
    """Gauges read from the database and the NodeBoard when scraped (cached CLUSTER_CACHE_S)."""

    def __init__(self, db, nodes):
        self.db = db
        self.nodes = nodes
        self._lock = threading.Lock()
        self._families = []
        self._read_at = None

    def describe(self):
        return []  # read at scrape time; nothing to check at registration

    def collect(self):
        with self._lock:
            if self._read_at is None or time.monotonic() - self._read_at >= CLUSTER_CACHE_S:
                try:
                    self._families = self._read()
                    self._read_at = time.monotonic()
                except pymongo.errors.PyMongoError as e:  # a scrape while the database is away: what was read last
                    log.warning('metrics: the database could not be read (%s)', loggable.describe(e))
            return list(self._families)

    def _read(self):
        experiments = self.db[EXPERIMENTS].find({}, {'batchCount': 1, 'stateCounts': 1, 'stagedChunks': 1})
        counts = zero_counts()
        for experiment_counts in batch_counts(self.db, experiments).values():
            for state, number in experiment_counts.items():
                counts[state] += number
        batches = GaugeMetricFamily(BATCHES_METRIC, 'Batches by state', labels=['state'])
        for state in ALL_STATES:
            batches.add_metric([state], counts[state])

        board = self.nodes.snapshot()
        cordoned = cordoned_nodes(self.db)
        by_state = {state: 0 for state in NODE_STATES}
        for name, status in board.items():
            by_state[node_state(status, name in cordoned)] += 1
        nodes = GaugeMetricFamily(NODES_METRIC, 'Nodes of the configuration by state', labels=['state'])
        for state in NODE_STATES:
            nodes.add_metric([state], by_state[state])

        used_mib = {name: 0 for name in board}
        for batch in self.db[BATCHES].find({'state': {'$in': list(ACTIVE_STATES)}},
                                           {'node': 1, 'requirements.ramMiB': 1}):
            if batch.get('node') in used_mib:
                used_mib[batch['node']] += (batch.get('requirements') or {}).get('ramMiB') or 0
        ram = GaugeMetricFamily(NODE_RAM_USED_METRIC, 'RAM held by the scheduled and processing batches of a node',
                                labels=['node'])
        for name in sorted(used_mib):
            ram.add_metric([name], used_mib[name])

        pending = GaugeMetricFamily(NOTIFICATIONS_PENDING_METRIC, 'Notification deliveries not yet taken by their '
                                    'hook', value=self.db[NOTIFICATIONS].count_documents({'state': PENDING}))
        return [batches, nodes, ram, pending]
