"""A CC-Agency under test: configuration file, controller process, broker HTTP server process, users.

Everything runs as a separate real process on loopback, started and stopped by PID: the controller with
`python -m cc_agency.controller.main`, the broker with `python -m cc_agency.broker.devserver` (threaded Werkzeug).
"""
import contextlib
import os
import subprocess
import sys
import tempfile
import time

import pymongo
import requests
import yaml

from .processes import free_port, terminate_pid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TERMINAL = ('succeeded', 'failed', 'cancelled')


def agency_config(mongo_server, db_name, nodes, strategy='spread', attempts_to_fail=3, controller_port=None,
                  extra=None):
    """A configuration in the seed's format for a test cluster."""
    port = controller_port or free_port()
    conf = {
        'broker': {'external_url': 'http://127.0.0.1/', 'auth': {
            'num_login_attempts': 3, 'block_for_seconds': 30, 'tokens_valid_for_seconds': 3600,
            'bcrypt_rounds': 4}},
        'controller': {
            'external_url': 'tcp://127.0.0.1:{}'.format(port), 'bind_host': '127.0.0.1', 'bind_port': port,
            'docker': {'core_image': {'url': 'unused', 'disable_pull': False}, 'nodes': nodes},
            'scheduling': {'strategy': strategy, 'attempts_to_fail': attempts_to_fail},
        },
        'mongo': {'host': mongo_server.host, 'port': mongo_server.port, 'db': db_name},
    }
    for dotted, value in (extra or {}).items():
        node = conf
        *parents, leaf = dotted.split('.')
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return conf


class Agency:
    """Controller + broker for one test database. `session(user)` gives a token-authenticated HTTP session."""

    def __init__(self, conf, work_dir=None):
        self.conf = conf
        self.work_dir = work_dir or tempfile.mkdtemp(prefix='cca-agency-')
        self.conf_path = os.path.join(self.work_dir, 'cc-agency.yml')
        with open(self.conf_path, 'w') as f:
            yaml.safe_dump(conf, f)
        self.port = free_port()
        self.url = 'http://127.0.0.1:{}'.format(self.port)
        self.controller = None
        self.broker = None
        self._logs = []

    def _spawn(self, name, module, *args):
        log_path = os.path.join(self.work_dir, '{}.log'.format(name))
        log = open(log_path, 'ab')
        self._logs.append(log)
        env = dict(os.environ, PYTHONUNBUFFERED='1', PYTHONPATH=REPO)
        return subprocess.Popen([sys.executable, '-m', module, '-c', self.conf_path] + list(args), cwd=REPO,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)

    def start(self):
        self.start_controller()
        self.broker = self._spawn('broker', 'cc_agency.broker.devserver', '--port', str(self.port))
        deadline = time.time() + 30
        while True:
            try:
                if requests.get(self.url + '/', timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.time() > deadline or self.broker.poll() is not None:
                raise RuntimeError('broker did not start:\n' + self.log('broker'))
            time.sleep(0.05)
        return self

    def start_controller(self):
        self.controller = self._spawn('controller', 'cc_agency.controller.main', '--log-level', 'DEBUG')

    def stop_controller(self, kill=False):
        if self.controller is not None and self.controller.poll() is None:
            if kill:
                self.controller.kill()
                self.controller.wait()
            else:
                terminate_pid(self.controller.pid, 10, self.controller, 'controller')
        self.controller = None

    def stop(self):
        self.stop_controller()
        if self.broker is not None and self.broker.poll() is None:
            terminate_pid(self.broker.pid, 10, self.broker, 'broker')
        for log in self._logs:
            log.close()

    def log(self, name):
        with open(os.path.join(self.work_dir, '{}.log'.format(name)), errors='replace') as f:
            return f.read()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- users and HTTP -------------------------------------------------------------------------------------
    def ccagency(self, *args, stdin=''):
        """Run the operator CLI against this agency's configuration."""
        return subprocess.run([sys.executable, '-m', 'cc_agency.cli.main'] + list(args) + ['-c', self.conf_path],
                              input=stdin, capture_output=True, text=True, cwd=REPO,
                              env=dict(os.environ, PYTHONPATH=REPO), timeout=60)

    def create_user(self, username, password, admin=False):
        args = ['create-broker-user', '--username', username, '--password-stdin'] + (['--admin'] if admin else [])
        result = self.ccagency(*args, stdin=password + '\n')
        assert result.returncode == 0, result.stderr
        return username, password

    @contextlib.contextmanager
    def database(self):
        """The agency's database, through a pymongo client of its own (closed afterwards)."""
        client = pymongo.MongoClient(self.conf['mongo']['host'], self.conf['mongo']['port'], directConnection=True)
        try:
            yield client[self.conf['mongo']['db']]
        finally:
            client.close()

    def session(self, username, password):
        """A requests.Session that authenticates with a token fetched once with Basic auth."""
        response = requests.get(self.url + '/token', auth=(username, password), timeout=10)
        response.raise_for_status()
        session = requests.Session()
        session.headers['Authorization'] = 'Bearer ' + response.json()['token']
        return session

    def wait_terminal(self, session, experiment_id, count, timeout=60):
        """Poll until `count` batches of the experiment are terminal; returns the batches."""
        deadline = time.time() + timeout
        while True:
            batches = session.get(self.url + '/batches', params={'experimentId': experiment_id, 'limit': 1000},
                                  timeout=10).json()
            if len(batches) >= count and all(b['state'] in TERMINAL for b in batches):
                return batches
            if time.time() > deadline:
                raise AssertionError('batches not terminal after {} s: {}\ncontroller log tail:\n{}'.format(
                    timeout, [b['state'] for b in batches], self.log('controller')[-4000:]))
            time.sleep(0.05)
