"""Helpers of the cluster tests (tests/integration/test_cluster_*.py): REDs, agencies on several engines, and a
sampler that watches what the engines themselves run."""
import threading
import time

from tests import reds

LABEL = 'cc-agency.batch'


def command_red(scripts, ram=256, gpus=None, image=reds.TEST_IMAGE, execution_settings=None):
    """A RED whose batches run `python3 -c SCRIPT` (one batch per script), without connectors."""
    settings = {'image': {'url': image}, 'ram': ram}
    if gpus is not None:
        settings['gpus'] = gpus
    red = {
        'redVersion': '9',
        'cli': {'cwlVersion': 'v1.0', 'class': 'CommandLineTool', 'baseCommand': ['python3', '-c'],
                'inputs': {'script': {'type': 'string', 'inputBinding': {'position': 0}}}, 'outputs': {}},
        'container': {'engine': 'docker', 'settings': settings},
        'batches': [{'inputs': {'script': script}, 'outputs': {}} for script in scripts],
    }
    if execution_settings is not None:
        red['execution'] = {'engine': 'ccagency', 'settings': execution_settings}
    return red


def nodes_of(engines, network='none', **extra):
    """The `controller.docker.nodes` section for test engines (unix sockets), named like the engines."""
    return {engine.name: dict({'base_url': engine.base_url, 'network': network}, **extra.get(engine.name, {}))
            for engine in engines}


def submit(agency, session, red, **params):
    response = session.post(agency.url + '/red', json=red, params=params, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()['experimentId']


def user_session(agency, name='alice'):
    agency.create_user(name, name + '-pw')
    return agency.session(name, name + '-pw')


def batches_of(agency, session, experiment_id, count, timeout=120):
    """Wait until the experiment's `count` batches are terminal; return them in full (with history)."""
    done = agency.wait_terminal(session, experiment_id, count, timeout=timeout)
    return [session.get(agency.url + '/batches/' + batch['_id'], timeout=10).json() for batch in done]


def wait_nodes_online(agency, session, names, timeout=30):
    deadline = time.time() + timeout
    while True:
        nodes = {n['nodeName']: n for n in session.get(agency.url + '/nodes', timeout=10).json()}
        if all(nodes.get(name, {}).get('state') == 'online' for name in names):
            return nodes
        if time.time() > deadline:
            raise AssertionError('nodes not online: {}'.format(nodes))
        time.sleep(0.1)


def engine_ram_mib(engine):
    return engine.info()['MemTotal'] // (1024 * 1024)


def max_overlap(intervals):
    """The most intervals (start, end) that are open at one time."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
                    key=lambda event: (event[0], event[1]))
    open_now = most = 0
    for _, change in events:
        open_now += change
        most = max(most, open_now)
    return most


def history_time(batch, state, last=False):
    times = [entry['time'] for entry in batch['history'] if entry['state'] == state]
    return times[-1] if last else times[0]


class EngineSampler(threading.Thread):
    """Watches the running batch containers of each engine, as the engine reports them (list + inspect).

    Records per engine the largest sum of memory limits seen at one time (`max_ram_mib`), the most containers
    seen at one time (`max_running`), and every set of NVIDIA_VISIBLE_DEVICES values running together.
    """

    def __init__(self, engines, interval_s=0.05):
        super().__init__(daemon=True)
        self.engines = engines
        self.interval_s = interval_s
        self.clients = {engine.name: engine.client() for engine in engines}
        self.max_ram_mib = {engine.name: 0 for engine in engines}
        self.max_running = {engine.name: 0 for engine in engines}
        self.gpu_sets = []  # per sample and engine: [visible devices of each running container]
        self.seen = {}  # container id -> {'ramMiB', 'gpus', 'deviceRequests', 'batchId', 'engine'}
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            for name, client in self.clients.items():
                try:
                    running = client.api.containers(filters={'label': LABEL, 'status': 'running'})
                    facts = [self._facts(client, name, container['Id']) for container in running]
                except Exception:  # a container that ended between list and inspect
                    continue
                facts = [f for f in facts if f is not None]
                self.max_ram_mib[name] = max(self.max_ram_mib[name], sum(f['ramMiB'] for f in facts))
                self.max_running[name] = max(self.max_running[name], len(facts))
                self.gpu_sets.append([f['gpus'] for f in facts if f['gpus'] != 'void'])
            self._halt.wait(self.interval_s)

    def _facts(self, client, engine_name, container_id):
        if container_id not in self.seen:
            try:
                info = client.api.inspect_container(container_id)
            except Exception:
                return None
            env = dict(item.split('=', 1) for item in info['Config']['Env'] or [])
            self.seen[container_id] = {
                'ramMiB': info['HostConfig']['Memory'] // (1024 * 1024),
                'gpus': env.get('NVIDIA_VISIBLE_DEVICES'),
                'deviceRequests': info['HostConfig'].get('DeviceRequests'),
                'batchId': info['Config']['Labels'].get(LABEL),
                'engine': engine_name,
            }
        return self.seen[container_id]

    def stop(self):
        self._halt.set()
        self.join(10)
        for client in self.clients.values():
            client.close()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
