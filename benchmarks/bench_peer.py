"""Side by side with cc-agency 9.3.0: the same work on both agencies, one after the other, in one invocation.

Same machine, same SecantusDB server (a database each), same Docker engine (one node, network host), same image
(from a registry on loopback, benchmarks/peer_image.py), same HTTP file server, both brokers under Debian's uwsgi
with 2 processes; the download-compute-upload RED of tests/integration/test_end_to_end.py. 9.3 is installed from
PyPI into a virtualenv outside the checkout (benchmarks/agency93.py); this project runs from the checkout, its
broker from a venv of Debian's python3 (benchmarks/agency_uwsgi.py). Printed table (ratio = this / 9.3):

    1 batch, POST /red -> succeeded (median of 3)   goal <= 0.5
    40 batches, one node, makespan                    goal <= 0.6
    whole machine CPU for those 40 (/proc/stat)       goal <= 0.6
    controller CPU for those 40 (/proc/<pid>/stat)    goal <= 0.5
    GET /batches/<id>, HTTP Basic, 1 client           goal >= 2
    GET /batches/<id>, token (9.3: JWT Bearer)        goal >= 1.5
    GET / without auth                                (no goal)

plus the CPU of each process tree (controller, brokers, dockerd, containerd, SecantusDB) and inside the containers.
Requests/s come from ApacheBench (`ab`); Basic with one client, the others with --concurrency clients.

`--big-queue` (this project only, minutes): 10 experiments of 10,000 batches (`batchConcurrencyLimit: 1` each, so
99,990 wait), then another user's single-batch experiments: POST /red -> succeeded against idle; GET
/batches/count?state=registered and GET /batches?state=registered&limit=100 as admin; registering the 100,000 (the
POSTs, until the API counts and lists them all; then until the registrar has inserted the chunk each queue needs
first); the duration of a scheduling pass (the controller's DEBUG line
'scheduling pass: %d scheduled in %.1f ms') at 1,000 vs 100,000 queued. The 1,000 are measured first, in a
database of their own.

    python3 benchmarks/bench_peer.py [--quick] [--compiled] [--batches 40] [--latency-runs 3]
    python3 benchmarks/bench_peer.py --big-queue [--quick] [--sweeps 10 --sweep-batches 10000]

Everything it starts (SecantusDB, dockerd, registry, uwsgi servers, controllers) is stopped by PID at the end, also
after a failure, Ctrl-C or SIGTERM.
"""
import argparse
import os
import re
import signal
import statistics
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bson import ObjectId  # noqa: E402
import docker.errors  # noqa: E402
import requests  # noqa: E402

from benchmarks import agency93, agency_uwsgi, peer_image  # noqa: E402
from benchmarks.bench_api import ab  # noqa: E402
from benchmarks.bench_cluster import containers_cpu_s  # noqa: E402
from benchmarks.proc_cpu import CpuMeter  # noqa: E402
from cc_agency.registration import CHUNK_BATCHES  # noqa: E402
from tests import reds  # noqa: E402
from localcluster import DockerEngine, FileServer, MongoServer, load_images_into  # noqa: E402
from localcluster.agency import agency_config  # noqa: E402
from localcluster.registry import Registry  # noqa: E402

TERMINAL = ('succeeded', 'failed', 'cancelled')
POLL_S = 0.1  # how often a single batch's state is asked for
USER, PASSWORD = 'bench', 'bench-password'
ADMIN, ADMIN_PASSWORD = 'bench-admin', 'bench-admin-password'
OTHER, OTHER_PASSWORD = 'other', 'other-password'
NODE = 'node1'
UNREACHABLE_LINE = 'database unreachable ('  # cc_agency/controller/daemon.py: a round that failed
PASS_LINE = re.compile(r'scheduling pass: (\d+) scheduled in ([\d.]+) ms')

# (label, key, unit, goal operator, goal bound); ratio = this project / 9.3
ROWS = (
    ('1 batch, POST /red -> succeeded (median of {runs})', 'latency_s', 's', '<=', 0.5),
    ('{batches} batches, one node, makespan', 'makespan_s', 's', '<=', 0.6),
    ('whole machine CPU for those {batches}', 'machine_cpu_s', 'CPU-s', '<=', 0.6),
    ('controller CPU for those {batches}', 'controller_cpu_s', 'CPU-s', '<=', 0.5),
    ('GET /batches/<id>, HTTP Basic, 1 client', 'basic_rps', 'req/s', '>=', 2),
    ('GET /batches/<id>, token (9.3: JWT Bearer)', 'token_rps', 'req/s', '>=', 1.5),
    ('GET / without auth', 'root_rps', 'req/s', None, None),
)


# ------------------------------------------------------------------------------------------------ pure helpers

def goal_met(ratio, operator, bound):
    """None when the row has no goal."""
    if operator is None:
        return None
    return ratio <= bound if operator == '<=' else ratio >= bound


def table(peer, this, runs, batches):
    """The comparison as Markdown table lines; `peer` and `this` map a row's key to its figure."""
    lines = ['| work | cc-agency 9.3.0 | this project | ratio | goal |', '|---|---|---|---|---|']
    for label, key, unit, operator, bound in ROWS:
        ratio = this[key] / peer[key] if peer.get(key) else float('nan')
        met = goal_met(ratio, operator, bound)
        goal = '-' if operator is None else '{} {} {}'.format(operator, bound, 'met' if met else 'NOT met')
        lines.append('| {} | {} | {} | {:.2f} | {} |'.format(label.format(runs=runs, batches=batches),
                                                            _figure(peer.get(key), unit), _figure(this[key], unit),
                                                            ratio, goal))
    return lines


def _figure(value, unit):
    if value is None:
        return '-'
    return '{:,.0f} {}'.format(value, unit) if value >= 100 else '{:.2f} {}'.format(value, unit)


def pass_durations_ms(log_text):
    """[(scheduled, ms)] of the controller's 'scheduling pass' DEBUG lines in `log_text`."""
    return [(int(n), float(ms)) for n, ms in PASS_LINE.findall(log_text)]


# ------------------------------------------------------------------------------------------------ the subjects

class Subject:
    """One agency as the workloads see it: its broker URL, a token, its database, the PIDs of what it runs."""

    def __init__(self, name, agency, database):
        self.name = name
        self.agency = agency
        self.db = database
        self.headers = None

    @property
    def url(self):
        return self.agency.url

    def login(self):
        self.headers = self.agency.bearer(USER, PASSWORD)


def experiment_red(files, image, subject, count, tag, concurrency_limit=None, shared_input=False):
    """The end-to-end test's RED with `count` batches; inputs on the file server (one each, or one for all)."""
    batches = []
    for i in range(count):
        name = '{}-in.txt'.format(tag) if shared_input else '{}-{}.txt'.format(tag, i)
        if not shared_input or i == 0:
            files.add('/files/' + name, b'hello ' * 20)
        batches.append(reds.batch(files.base_url, name=name, out='{}-{}.out'.format(tag, i % 1000)))
    settings = {'access': {'url': subject.url, 'auth': {'username': USER, 'password': PASSWORD}}}
    if concurrency_limit:
        settings['batchConcurrencyLimit'] = concurrency_limit
    return reds.red(batches, image=image, execution_settings=settings)


def post_red(subject, red, headers=None, timeout_s=600):
    response = requests.post(subject.url + '/red', json=red, headers=headers or subject.headers, timeout=timeout_s)
    if response.status_code != 200:
        raise RuntimeError('{}: POST /red answered {}: {}'.format(subject.name, response.status_code,
                                                                  response.text[:500]))
    return response.json()['experimentId']


def wait_online(subject, timeout_s=90):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        nodes = requests.get(subject.url + '/nodes', headers=subject.headers, timeout=30).json()
        if any(node.get('state') == 'online' for node in nodes):
            return
        time.sleep(0.2)
    raise RuntimeError('{}: no node online after {} s: {}'.format(subject.name, timeout_s, nodes))


class BatchTimeout(RuntimeError):
    """A batch that was not terminal in time."""


def one_batch_s(subject, red, headers=None, timeout_s=120):
    """POST /red of a one-batch RED until its batch is terminal; (seconds from the POST until the agency recorded
    it succeeded, batch id). The end is the time in the batch's history (the clock of this machine), so the poll
    can be slow (POLL_S) without rounding the figure up, and does not load the agency it measures: a poll every
    10 ms was 50-100 list requests/s through the broker and the database, in the middle of what is measured."""
    headers = headers or subject.headers
    t0 = time.time()  # the clock of the batches' history
    experiment_id = post_red(subject, red, headers)
    deadline = time.monotonic() + timeout_s
    while True:
        response = requests.get(subject.url + '/batches', params={'experimentId': experiment_id}, headers=headers,
                                timeout=120)
        # an error answer (a 503 while the database is overloaded) is one more poll, not the end of the run
        batches = response.json() if response.status_code == 200 else []
        if batches and batches[0]['state'] in TERMINAL:
            break
        if time.monotonic() > deadline:
            raise BatchTimeout('{}: batch not terminal after {} s: {}'.format(subject.name, timeout_s, batches))
        time.sleep(POLL_S)
    batch = subject.db.batches.find_one({'_id': ObjectId(batches[0]['_id'])}, {'history': 1})
    if batches[0]['state'] != 'succeeded':
        raise RuntimeError('{}: the batch {}: {}'.format(subject.name, batches[0]['state'], batch.get('history')))
    return [e['time'] for e in batch['history'] if e['state'] == 'succeeded'][-1] - t0, batches[0]['_id']


def batch_phases_s(subject, batch_id, headers):
    """(registered -> scheduled, scheduled -> processing, processing -> succeeded) in seconds, from the batch's
    history."""
    batch = requests.get(subject.url + '/batches/' + batch_id, headers=headers, timeout=30).json()
    times = {entry['state']: entry['time'] for entry in batch['history']}
    return (times['scheduled'] - times['registered'], times['processing'] - times['scheduled'],
            times['succeeded'] - times['processing'])


def wait_terminal(db, experiment_id, count, timeout_s=900):
    """When the last of the experiment's batches became terminal (from their history), polled every 0.25 s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if db.batches.count_documents({'experimentId': experiment_id, 'state': {'$in': list(TERMINAL)}}) >= count:
            return max(batch['history'][-1]['time'] for batch in db.batches.find(
                {'experimentId': experiment_id}, {'history': {'$slice': -1}}))
        time.sleep(0.25)
    raise RuntimeError('batches not terminal after {} s'.format(timeout_s))


def containerd_pid(engine):
    with open(os.path.join(engine.exec_root, 'containerd', 'containerd.pid')) as f:
        return int(f.read().strip())


def reset_engine(client, image):
    """No container and no pulled copy of the image left by the previous agency: each starts from the same state."""
    for container in client.containers.list(all=True):
        container.remove(force=True)
    try:
        client.images.remove(image, force=True)
    except docker.errors.ImageNotFound:
        pass


# ------------------------------------------------------------------------------------------------ the side by side

def measure(subject, env, args):
    """Every row of the table for one agency; also prints the CPU of each process tree."""
    figures = {}
    wait_online(subject)
    red1 = experiment_red(env.files, env.image, subject, 1, subject.name + '-one')
    one_batch_s(subject, red1)  # warm-up: the first pull of the image, the brokers' and the controller's caches
    samples = [one_batch_s(subject, red1) for _ in range(args.latency_runs)]
    figures['latency_s'] = statistics.median(s for s, _ in samples)
    batch_id = samples[-1][1]
    print('  1 batch: {} s'.format(', '.join('{:.2f}'.format(s) for s, _ in samples)))

    red_n = experiment_red(env.files, env.image, subject, args.batches, subject.name + '-many')
    roots = dict(subject.agency.pids(), dockerd=env.engine.pid, containerd=containerd_pid(env.engine),
                 secantusdb=env.mongo.pid, registry=env.registry.process.pid)
    load_before = os.getloadavg()[0]
    containers_before = containers_cpu_s([env.engine])
    meter = CpuMeter(roots).start()
    # the harness: this process alone (file server threads, the poll of the database); its tree holds everything
    harness_before = time.process_time()
    t0 = time.time()  # the clock of the batches' history
    experiment_id = post_red(subject, red_n)
    last = wait_terminal(subject.db, experiment_id, args.batches)
    cpu = meter.stop()
    cpu['harness'] = time.process_time() - harness_before
    containers = containers_cpu_s([env.engine]) - containers_before
    states = {}
    for batch in subject.db.batches.find({'experimentId': experiment_id}, {'state': 1}):
        states[batch['state']] = states.get(batch['state'], 0) + 1
    if states != {'succeeded': args.batches}:
        raise RuntimeError('{}: {} batches ended {}'.format(subject.name, args.batches, states))
    figures['makespan_s'] = last - t0
    figures['machine_cpu_s'] = cpu['machine']
    figures['controller_cpu_s'] = cpu['controller']
    # what the processes of this comparison spent: on a machine shared with other work, steadier than the machine's
    figures['own_cpu_s'] = containers + sum(cpu[name] for name in (
        'controller', 'brokers', 'dockerd', 'secantusdb', 'registry', 'harness'))
    print('  {} batches: makespan {:.1f} s, machine {:.1f} CPU-s (load average before {:.2f}); controller {:.2f}, '
          'brokers {:.2f}, dockerd {:.2f}, containerd {:.2f}, SecantusDB {:.2f}, registry {:.2f}, harness {:.2f}, '
          'in containers {:.2f} CPU-s'.format(
              args.batches, figures['makespan_s'], cpu['machine'], load_before, cpu['controller'], cpu['brokers'],
              cpu['dockerd'] - cpu['containerd'], cpu['containerd'], cpu['secantusdb'], cpu['registry'],
              cpu['harness'], containers))

    url = '{}/batches/{}'.format(subject.url, batch_id)
    token_args = ['-H', 'Authorization: ' + subject.headers['Authorization']]
    figures['basic_rps'], _ = ab(url, args.basic_requests, 1, ['-A', '{}:{}'.format(USER, PASSWORD)])
    ab(url, args.token_requests // 4, args.concurrency, token_args)  # warm-up: every worker connected
    figures['token_rps'], _ = ab(url, args.token_requests, args.concurrency, token_args)
    figures['root_rps'], _ = ab(subject.url + '/', args.root_requests, args.concurrency, [])
    print('  GET /batches/<id>: Basic {:.1f} req/s, token {:.0f} req/s; GET / {:.0f} req/s'.format(
        figures['basic_rps'], figures['token_rps'], figures['root_rps']))
    return figures


class Environment:
    """The services both agencies share."""

    def __init__(self, mongo, engine, client, files, registry, image):
        self.mongo, self.engine, self.client, self.files = mongo, engine, client, files
        self.registry, self.image = registry, image
        self.mongo_client = mongo.client()


def run_peer(env, args):
    venv = agency93.ensure_venv(args.venv93)
    agency93.tag_busybox(env.client)
    reset_engine(env.client, env.image)
    db_name = 'peer93_' + uuid.uuid4().hex[:8]
    nodes = {NODE: {'base_url': env.engine.base_url, 'network': 'host'}}
    with agency93.Agency93(venv, env.mongo, env.mongo_client, db_name, nodes) as agency:
        agency.create_user(USER, PASSWORD, admin=False)
        subject = Subject('cc-agency 9.3.0', agency, env.mongo_client[db_name])
        subject.login()
        print('cc-agency 9.3.0 (venv {}):'.format(venv))
        return measure(subject, env, args)


def this_conf(env, db_name, nodes):
    conf = agency_config(env.mongo, db_name, nodes)
    del conf['broker']['auth']['bcrypt_rounds']  # the seed's configuration: bcrypt's default cost (12)
    return conf


def run_this(env, args, venv):
    reset_engine(env.client, env.image)
    db_name = 'peerthis_' + uuid.uuid4().hex[:8]
    conf = this_conf(env, db_name, {NODE: {'base_url': env.engine.base_url, 'network': 'host'}})
    with agency_uwsgi.UwsgiAgency(conf, venv) as agency:
        agency.create_user(USER, PASSWORD)
        subject = Subject('this project', agency, env.mongo_client[db_name])
        subject.login()
        print('this project (broker venv {}):'.format(venv))
        return measure(subject, env, args)


def side_by_side(env, args):
    venv_this = agency_uwsgi.ensure_venv(args.venv_this)
    peer = run_peer(env, args)
    this = run_this(env, args, venv_this)
    print('\n{} ({} image, {}, {} CPUs)'.format(time.strftime('%Y-%m-%d %H:%M'),
                                               'compiled' if args.compiled else 'no-.pyc', env.image, os.cpu_count()))
    print('\n'.join(table(peer, this, args.latency_runs, args.batches)))
    print('CPU of the processes started for those {} batches (agency, dockerd with containerd, SecantusDB, registry, '
          'harness, containers): 9.3 {:.1f} CPU-s, this project {:.1f} CPU-s, ratio {:.2f}'.format(
              args.batches, peer['own_cpu_s'], this['own_cpu_s'], this['own_cpu_s'] / peer['own_cpu_s']))


# ------------------------------------------------------------------------------------------------ the big queue

def timed_get_ms(subject, path, params, headers, runs):
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        response = requests.get(subject.url + path, params=params, headers=headers, timeout=600)
        samples.append(1000 * (time.perf_counter() - t0))
        if response.status_code != 200:
            raise RuntimeError('GET {} answered {}: {}'.format(path, response.status_code, response.text[:300]))
    return statistics.median(samples)


def passes_during(agency, seconds, min_passes=3, max_s=300):
    """The scheduling passes the controller logs from now on, for at least `seconds` and until `min_passes` were
    logged (a pass over a long queue can take longer than the window), at most `max_s`: ([(scheduled, ms)], how
    many rounds it logged as failed because the database did not answer)."""
    start = len(agency.controller_log())
    t0 = time.monotonic()
    while True:
        time.sleep(1)
        text = agency.controller_log()[start:]
        passes = pass_durations_ms(text)
        waited_s = time.monotonic() - t0
        if (waited_s >= seconds and len(passes) >= min_passes) or waited_s >= max_s:
            return passes, text.count(UNREACHABLE_LINE)


def describe_passes(passes):
    if not passes:
        return 'no pass logged'
    durations = sorted(ms for _, ms in passes)
    return '{} passes, median {:.1f} ms, max {:.1f} ms ({} scheduled)'.format(
        len(passes), statistics.median(durations), durations[-1], sum(n for n, _ in passes))


def queue_phase(env, args, venv, experiments, batches_each):
    """A fresh agency and database; `experiments` of `batches_each` batches (limit 1) by USER, then OTHER's
    single-batch experiments and the admin's count and list. Returns the figures."""
    db_name = 'peerqueue_' + uuid.uuid4().hex[:8]
    conf = this_conf(env, db_name, {NODE: {'base_url': env.engine.base_url, 'network': 'host'}})
    figures = {}
    with agency_uwsgi.UwsgiAgency(conf, venv, log_level='DEBUG') as agency:
        for name, password, admin in ((USER, PASSWORD, False), (OTHER, OTHER_PASSWORD, False),
                                      (ADMIN, ADMIN_PASSWORD, True)):
            agency.create_user(name, password, admin)
        subject = Subject('this project', agency, env.mongo_client[db_name])
        subject.login()
        other = agency.bearer(OTHER, OTHER_PASSWORD)
        admin = agency.bearer(ADMIN, ADMIN_PASSWORD)
        wait_online(subject)
        red_other = experiment_red(env.files, env.image, subject, 1, 'other')
        one_batch_s(subject, red_other, other)  # warm-up: the image's first pull
        idle = [one_batch_s(subject, red_other, other)[0] for _ in range(args.latency_runs)]
        figures['idle_latency_s'] = statistics.median(idle)

        red = experiment_red(env.files, env.image, subject, batches_each, 'queue', concurrency_limit=1,
                             shared_input=True)
        post_s, experiment_ids = [], []
        t0 = time.perf_counter()
        for _ in range(experiments):
            t_post = time.perf_counter()
            experiment_ids.append(ObjectId(post_red(subject, red)))
            post_s.append(time.perf_counter() - t_post)
        total = experiments * batches_each
        # registered: every batch counted and listed by the API (a batch is, from the POST's answer on, while its
        # document waits in its staged chunk: cc_agency/staged_batches.py)
        counted = requests.get(subject.url + '/batches/count', headers=admin, timeout=600).json()['count']
        newest = requests.get(subject.url + '/batches', params={'limit': 1}, headers=admin, timeout=600).json()
        registered_s = time.perf_counter() - t0
        if counted < total or not newest or newest[0]['experimentId'] != str(experiment_ids[-1]):
            raise RuntimeError('after the POSTs, {:,} of {:,} batches are counted'.format(counted, total))
        # then the registrar inserts each experiment's first chunk (limit 1: the others wait in their chunks);
        # asked of the chunks (a few hundred documents), not by counting the batches: SecantusDB answers a count by
        # reading every document, and a probe every 0.2 s slows what it measures
        staged_chunks = experiments * (-(-batches_each // CHUNK_BATCHES) - 1)
        while subject.db.pending_batches.count_documents({}) > staged_chunks:
            time.sleep(0.2)
            if time.perf_counter() - t0 > 1800:
                raise RuntimeError('the first chunks of {:,} batches not inserted after 30 min'.format(total))
        figures.update(post_total_s=sum(post_s), post_median_s=statistics.median(post_s), registered_s=registered_s,
                       register_rate=total / registered_s, inserted_s=time.perf_counter() - t0)
        # printed as they come, so that a run cut short keeps what it measured
        print('  {} x {:,}: POSTs {:.1f} s (median {:.2f} s each), all {:,} counted and listed after {:.1f} s '
              '({:,.0f} batches/s), the queue\'s first {:,} inserted after {:.1f} s ({} chunks stay staged); '
              'another user\'s 1 batch idle {:.2f} s'.format(
                  experiments, batches_each, figures['post_total_s'], figures['post_median_s'], total, registered_s,
                  figures['register_rate'], total - staged_chunks * CHUNK_BATCHES, figures['inserted_s'],
                  staged_chunks, figures['idle_latency_s']), flush=True)
        time.sleep(2)  # the registrar's last round and its wake-up of the scheduler are over
        figures['passes'], figures['failed_passes'] = passes_during(agency, args.pass_window_s)
        figures['queued'] = requests.get(subject.url + '/batches/count', params={'state': 'registered'},
                                         headers=admin, timeout=600).json()['count']
        figures['inserted_queued'] = subject.db.batches.count_documents({'state': 'registered'})
        print('  {:,} registered ({:,} of them inserted); passes: {}; {} rounds failed (database unreachable)'.format(
            figures['queued'], figures['inserted_queued'], describe_passes(figures['passes']),
            figures['failed_passes']), flush=True)
        loaded, phases = [], []
        for _ in range(args.latency_runs):
            try:
                seconds, batch_id = one_batch_s(subject, red_other, other, timeout_s=args.loaded_timeout_s)
                loaded.append(seconds)
                phases.append(batch_phases_s(subject, batch_id, other))
            except BatchTimeout:
                loaded.append(None)
        done = [s for s in loaded if s is not None]
        figures['loaded_latency_s'] = statistics.median(done) if done else None
        print('  another user\'s 1 batch with the queue: {} s ({})'.format(', '.join(
            '{:.2f}'.format(s) if s is not None else '>{:.0f}'.format(args.loaded_timeout_s) for s in loaded),
            '; '.join('registered -> scheduled {:.2f}, -> processing {:.2f}, -> succeeded {:.2f}'.format(*p)
                      for p in phases)), flush=True)
        figures['count_ms'] = timed_get_ms(subject, '/batches/count', {'state': 'registered'}, admin, args.get_runs)
        figures['list_ms'] = timed_get_ms(subject, '/batches', {'state': 'registered', 'limit': 100}, admin,
                                          args.get_runs)
        print('  admin: count {:.0f} ms, list {:.0f} ms'.format(figures['count_ms'], figures['list_ms']), flush=True)
    return figures


def big_queue(env, args):
    venv = agency_uwsgi.ensure_venv(args.venv_this)
    small_each = 1000 if not args.quick else 100
    big_experiments, big_each = (args.sweeps, args.sweep_batches) if not args.quick else (2, 1000)
    print('{:,} queued (one experiment):'.format(small_each))
    small = queue_phase(env, args, venv, 1, small_each)
    reset_engine(env.client, env.image)
    print('{:,} queued ({} experiments):'.format(big_experiments * big_each, big_experiments))
    big = queue_phase(env, args, venv, big_experiments, big_each)
    print('\n{} (this project, {} image)'.format(time.strftime('%Y-%m-%d %H:%M'),
                                                 'compiled' if args.compiled else 'no-.pyc'))
    print('\n'.join(queue_table(small_each, big_experiments * big_each, small, big)))


def queue_table(small_n, big_n, small, big):
    """The big-queue figures as Markdown table lines: a column per queue length."""
    def row(label, key, template, missing='-'):
        cells = [template.format(f[key]) if f.get(key) is not None else missing for f in (small, big)]
        return '| {} | {} | {} |'.format(label, *cells)
    return ['| work | {:,} queued | {:,} queued |'.format(small_n, big_n), '|---|---|---|',
            row('another user\'s 1-batch experiment, POST -> succeeded, idle', 'idle_latency_s', '{:.2f} s'),
            row('the same with the queue', 'loaded_latency_s', '{:.2f} s', 'not succeeded in time'),
            row('GET /batches/count?state=registered (admin)', 'count_ms', '{:,.0f} ms'),
            row('GET /batches?state=registered&limit=100 (admin)', 'list_ms', '{:,.0f} ms'),
            row('registering: the POSTs', 'post_total_s', '{:.1f} s'),
            row('registering: until all are counted and listed', 'registered_s', '{:.1f} s'),
            row('registering: rate', 'register_rate', '{:,.0f} batches/s'),
            row('the registrar: until the first chunk of each is inserted', 'inserted_s', '{:.1f} s'),
            '| scheduling pass | {} | {} |'.format(describe_passes(small['passes']), describe_passes(big['passes'])),
            row('rounds failed meanwhile (database unreachable)', 'failed_passes', '{}')]


# ------------------------------------------------------------------------------------------------ main

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--big-queue', action='store_true', help='the big-queue mode (this project only; minutes)')
    parser.add_argument('--quick', action='store_true', help='fewer batches and requests: to check the harness')
    parser.add_argument('--compiled', action='store_true', help="an image with the packages' .pyc files")
    parser.add_argument('--batches', type=int, default=None, help='batches of the makespan row (default 40)')
    parser.add_argument('--latency-runs', type=int, default=None, help='default 3')
    parser.add_argument('--basic-requests', type=int, default=None, help='default 40')
    parser.add_argument('--token-requests', type=int, default=None, help='default 2000')
    parser.add_argument('--root-requests', type=int, default=None, help='default 4000')
    parser.add_argument('--concurrency', type=int, default=4, help='clients of the token and GET / rows')
    parser.add_argument('--sweeps', type=int, default=10, help='big queue: experiments of the big queue')
    parser.add_argument('--sweep-batches', type=int, default=10000, help='big queue: batches of each')
    parser.add_argument('--get-runs', type=int, default=5, help='big queue: calls of each admin GET')
    parser.add_argument('--pass-window-s', type=float, default=None, help='big queue: seconds of logged passes')
    parser.add_argument('--loaded-timeout-s', type=float, default=600,
                        help="big queue: how long another user's batch may take with the queue")
    parser.add_argument('--venv93', default=agency93.DEFAULT_VENV)
    parser.add_argument('--venv-this', default=agency_uwsgi.DEFAULT_VENV)
    args = parser.parse_args()
    quick = args.quick
    for name, full, small in (('batches', 40, 8), ('latency_runs', 3, 1), ('basic_requests', 40, 10),
                              ('token_requests', 2000, 200), ('root_requests', 4000, 400), ('pass_window_s', 20, 5)):
        if getattr(args, name) is None:
            setattr(args, name, small if quick else full)

    def interrupted(signum, _frame):
        raise KeyboardInterrupt('signal {}'.format(signum))
    signal.signal(signal.SIGTERM, interrupted)  # SIGINT raises KeyboardInterrupt already: the finally blocks run

    with MongoServer() as mongo, FileServer() as files, Registry() as registry:
        engine = DockerEngine(name='peer')
        engine.start()
        try:
            load_images_into([engine])
            client = engine.client()
            try:
                image = peer_image.publish(client, registry, compiled=args.compiled)
                env = Environment(mongo, engine, client, files, registry, image)
                try:
                    big_queue(env, args) if args.big_queue else side_by_side(env, args)
                finally:
                    env.mongo_client.close()
            finally:
                client.close()
        finally:
            engine.stop(remove=True)


if __name__ == '__main__':
    main()
