"""cc-agency 9.3.0 from PyPI, run beside this project as the peer that benchmarks compare against.

Nothing of it enters the project: it is installed into a throwaway virtualenv outside the checkout
(`~/.cache/cc-agency-peer/venv93` by default, made once and reused) and runs as separate processes on loopback:
its trustee and its broker under Debian's uwsgi, its controller (`ccagency-controller`). The facts behind each
choice are in ../shared/docs/PEER.md:

- the pins: docker-py 6.1.3 (pinned by cc-core 9.3) breaks with requests >= 2.32, and Werkzeug 2.3 breaks its
  Bearer tokens;
- the venv is made with Debian's /usr/bin/python3, the interpreter that uwsgi-plugin-python3 embeds (see
  localcluster/broker.py make_uwsgi_venv);
- its configuration differs from the seed's (JWT secret, a unix socket for the controller, a trustee, mongo
  credentials): `config()` writes it; the JWT secret is set so that it does not write /tmp/cc_jwt_secret;
- the trustee keeps the secrets in one process's memory, so it runs with `processes = 1` (and threads);
- each node runs `docker.io/busybox:latest` as 1000:1000 when it comes online: `tag_busybox()` names the test
  busybox so on the engine.

Both uwsgi servers get their configuration path through `pyargv` (their app modules parse `-c` at import).
"""
import os
import secrets as token_source
import signal
import subprocess
import tempfile
import time

import requests

from localcluster.broker import DEBIAN_PYTHON, UWSGI, UwsgiBroker, site_packages
from localcluster.images import BUSYBOX_IMAGE
from localcluster.processes import free_port, signal_pid, terminate_pid, wait_pid_gone

VERSION = '9.3.0'
PINS = ['cc-agency==' + VERSION, 'Werkzeug==2.2.3', 'Flask>=2.2,<2.3', 'requests<2.32']
DEFAULT_VENV = os.path.join(os.path.expanduser('~'), '.cache', 'cc-agency-peer', 'venv93')

TRUSTEE_INI = """[uwsgi]
plugins = python3
http-socket = 127.0.0.1:{port}
wsgi-file = {wsgi_file}
processes = 1
threads = 4
lazy-apps = True
virtualenv = {venv}
pyargv = -c {conf}
"""


def clean_env(venv, **extra):
    """The environment of 9.3's processes: without PYTHONPATH, which would make them import this project's
    `cc_agency` (the benchmarks run with the checkout on PYTHONPATH); they also run outside the checkout (cwd)."""
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONHOME', 'CC_AGENCY_CONF')}
    return dict(env, VIRTUAL_ENV=venv, **extra)


class _Broker93(UwsgiBroker):
    def env(self):
        return clean_env(self.venv, PYTHONUNBUFFERED='1')


def ensure_venv(path=DEFAULT_VENV):
    """The 9.3 virtualenv at `path`, made with Debian's python3 and the pins when it is missing or incomplete."""
    python = os.path.join(path, 'bin', 'python')
    check = [python, '-c', 'from cc_agency.version import VERSION; assert VERSION == {!r}, VERSION'.format(VERSION)]
    if os.access(python, os.X_OK) and subprocess.run(check, capture_output=True, env=clean_env(path),
                                                         cwd=path).returncode == 0:
        return path
    if not os.access(DEBIAN_PYTHON, os.X_OK) or not os.access(UWSGI, os.X_OK):
        raise RuntimeError('cc-agency 9.3 under uwsgi needs Debian packages uwsgi, uwsgi-plugin-python3, python3-venv')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    subprocess.run([DEBIAN_PYTHON, '-m', 'venv', path], check=True, capture_output=True)
    result = subprocess.run([os.path.join(path, 'bin', 'pip'), 'install', '--quiet'] + PINS,
                            capture_output=True, text=True, env=clean_env(path))
    if result.returncode != 0:
        raise RuntimeError('pip install of cc-agency {} failed:\n{}'.format(VERSION, result.stderr[-4000:]))
    subprocess.run(check, check=True, env=clean_env(path), cwd=path)
    return path


def tag_busybox(engine_client):
    """9.3 checks a node by running docker.io/busybox:latest: give the test busybox that name on the engine."""
    engine_client.images.get(BUSYBOX_IMAGE).tag('busybox', 'latest')


class Agency93:
    """Trustee, controller and broker (uwsgi, `broker_processes`) of cc-agency 9.3 for one database.

    `nodes`: {name: {base_url, network}} as in 9.3's `controller.docker.nodes`. `mongo_client` (pymongo, without
    auth) creates the database user that 9.3 requires. After `start()`: `url`, `pids()`, `create_user()`, `login()`.
    """

    def __init__(self, venv, mongo_server, mongo_client, db_name, nodes, broker_processes=2, work_dir=None):
        self.venv = venv
        self.work_dir = work_dir or tempfile.mkdtemp(prefix='cca-peer93-')
        self.conf_path = os.path.join(self.work_dir, 'cc-agency.yml')
        self.db_name = db_name
        self.mongo_client = mongo_client
        self.trustee_port = free_port()
        self.db_password = token_source.token_urlsafe(16)
        self.conf = {
            'broker': {'auth': {'num_login_attempts': 3, 'block_for_seconds': 30, 'tokens_valid_for_seconds': 86400,
                                'jwt': {'secret_key': token_source.token_urlsafe(32),
                                        'access_token_expires': 86400}}},
            'controller': {'bind_socket_path': os.path.join(self.work_dir, 'controller.sock'),
                           'docker': {'nodes': nodes}},
            'trustee': {'internal_url': 'http://127.0.0.1:{}'.format(self.trustee_port), 'username': 'trustee',
                        'password': token_source.token_urlsafe(16)},
            'mongo': {'host': mongo_server.host, 'port': mongo_server.port, 'db': db_name, 'username': 'cc93',
                      'password': self.db_password},
        }
        self.broker_processes = broker_processes
        self.broker = None
        self.trustee = None
        self.controller = None
        self._logs = []

    @property
    def url(self):
        return self.broker.url

    def _log(self, name):
        log = open(os.path.join(self.work_dir, name + '.log'), 'ab')
        self._logs.append(log)
        return log

    def log(self, name):
        with open(os.path.join(self.work_dir, name + '.log'), errors='replace') as f:
            return f.read()

    def start(self):
        os.makedirs(self.work_dir, exist_ok=True)
        self.mongo_client[self.db_name].command('createUser', 'cc93', pwd=self.db_password,
                                                roles=[{'role': 'readWrite', 'db': self.db_name}])
        try:
            self._start_processes()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_processes(self):
        packages = site_packages(self.venv)
        trustee_ini = os.path.join(self.work_dir, 'trustee.ini')
        with open(trustee_ini, 'w') as f:
            f.write(TRUSTEE_INI.format(port=self.trustee_port, venv=self.venv, conf=self.conf_path,
                                       wsgi_file=os.path.join(packages, 'cc_agency', 'trustee', 'app.py')))
        # UwsgiBroker writes the configuration to work_dir/cc-agency.yml, which is conf_path
        self.broker = _Broker93(self.conf, self.venv, processes=self.broker_processes, work_dir=self.work_dir,
                                  extra_ini='pyargv = -c {}\n'.format(self.conf_path))
        env = clean_env(self.venv, PYTHONUNBUFFERED='1')
        self.trustee = subprocess.Popen([UWSGI, '--ini', trustee_ini], cwd=self.work_dir, env=env,
                                        stdin=subprocess.DEVNULL, stdout=self._log('trustee'),
                                        stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_http('http://127.0.0.1:{}/'.format(self.trustee_port), (200, 401), self.trustee, 'trustee')
        self.controller = subprocess.Popen([os.path.join(self.venv, 'bin', 'ccagency-controller'), '-c',
                                            self.conf_path], cwd=self.work_dir, env=env, stdin=subprocess.DEVNULL,
                                           stdout=self._log('controller'), stderr=subprocess.STDOUT,
                                           start_new_session=True)
        self.broker.start()

    def _wait_http(self, url, statuses, process, name, timeout_s=60):
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if requests.get(url, timeout=1).status_code in statuses:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError('9.3 {} did not start:\n{}'.format(name, self.log(name)[-3000:]))
            time.sleep(0.05)

    def stop(self):
        """Broker first (it pushes to the controller), then controller, then trustee; each by its PID."""
        errors = []
        for stop in (lambda: self.broker and self.broker.stop(),
                     lambda: self.controller and terminate_pid(self.controller.pid, 10, self.controller,
                                                               '9.3 controller'),
                     # the trustee's uwsgi has no master: SIGINT ends it, SIGTERM would only reload it
                     lambda: self.trustee and _stop_uwsgi_single(self.trustee)):
            try:
                stop()
            except Exception as e:  # stop the others all the same
                errors.append(e)
        for log in self._logs:
            log.close()
        self._logs = []
        if errors:
            raise errors[0]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def pids(self):
        """Root PIDs of what it runs: {'controller': pid, 'brokers': [broker, trustee]}."""
        return {'controller': self.controller.pid, 'brokers': [self.broker.process.pid, self.trustee.pid]}

    # --- users and HTTP -------------------------------------------------------------------------------------------
    def create_user(self, username, password, admin=False):
        """What `ccagency create-broker-user` does after its prompts (9.3's own Auth.create_user: PBKDF2)."""
        code = ('import sys; from cc_agency.commons.conf import Conf; from cc_agency.commons.db import Mongo; '
                'from cc_agency.broker.auth import Auth; conf = Conf(sys.argv[1]); '
                'Auth(conf, Mongo(conf)).create_user(sys.argv[2], sys.stdin.readline().rstrip("\\n"), '
                'sys.argv[3] == "admin")')
        subprocess.run([os.path.join(self.venv, 'bin', 'python'), '-c', code, self.conf_path, username,
                        'admin' if admin else 'user'], input=password + '\n', text=True, check=True,
                       capture_output=True, timeout=60, env=clean_env(self.venv), cwd=self.work_dir)

    def bearer(self, username, password):
        """Headers with a JWT access token from POST /login (Basic)."""
        response = requests.post(self.url + '/login', auth=(username, password), timeout=30)
        response.raise_for_status()
        return {'Authorization': 'Bearer ' + response.json()['access_token']}


def _stop_uwsgi_single(process):
    if process.poll() is None:
        signal_pid(process.pid, signal.SIGINT)
        wait_pid_gone(process.pid, 15, process)
    terminate_pid(process.pid, 10, process, '9.3 trustee')
