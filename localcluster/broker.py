"""The broker alone (no controller), as a real process on loopback: the development server or uwsgi.

API tests and benchmarks that need no Docker engine use these instead of ``Agency``:

    BrokerServer(conf)            ``python -m cc_agency.broker.devserver`` (threaded Werkzeug), HTTP on 127.0.0.1
    UwsgiBroker(conf, venv)       Debian's ``uwsgi --ini`` with the seed's ini (plugins = python3, socket, wsgi-file,
                                  processes, lazy-apps, virtualenv from $VIRTUAL_ENV), plus an ``http-socket``
    make_uwsgi_venv(path)         the venv the seed's ini expects: Debian's /usr/bin/python3 (the interpreter of
                                  uwsgi-plugin-python3) with ``pip install <repo>``
    uwsgi_request(sock, ...)      one request in the uwsgi protocol (what Apache's mod_proxy_uwsgi speaks)

Every process is started and stopped by PID (see processes.py).
"""
import atexit
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

import requests
import yaml

from .processes import free_port, pid_alive, signal_pid, terminate_pid, wait_pid_gone

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEBIAN_PYTHON = '/usr/bin/python3'
UWSGI = '/usr/bin/uwsgi'

# the seed's /opt/ccagency/privileged/ccagency-broker.ini; uid/gid dropped (no `cc` user on test machines)
SEED_INI = """[uwsgi]
plugins = python3
socket = {socket}
wsgi-file = {wsgi_file}
processes = {processes}
lazy-apps = True

if-env = VIRTUAL_ENV
virtualenv = %(_)
endif =
"""


_live = set()  # started and not stopped yet: stopped at exit, also when a test run is cut short


@atexit.register
def _stop_live():
    for process in list(_live):
        try:
            process.stop()
        except Exception:  # best effort at exit
            pass


class _Process:
    """A broker process with its configuration file and log in a work directory."""

    def __init__(self, conf, work_dir=None):
        self.conf = conf
        self.work_dir = work_dir or tempfile.mkdtemp(prefix='cca-broker-')
        self.conf_path = os.path.join(self.work_dir, 'cc-agency.yml')
        with open(self.conf_path, 'w') as f:
            yaml.safe_dump(conf, f)
        self.log_path = os.path.join(self.work_dir, 'broker.log')
        self.port = free_port()
        self.url = 'http://127.0.0.1:{}'.format(self.port)
        self.process = None

    def command(self):
        raise NotImplementedError

    def env(self):
        return dict(os.environ, PYTHONUNBUFFERED='1', CC_AGENCY_CONF=self.conf_path)

    def start(self, timeout=60):
        with open(self.log_path, 'ab') as log:
            self.process = subprocess.Popen(self.command(), cwd=self.work_dir, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=self.env(), start_new_session=True)
        _live.add(self)
        deadline = time.time() + timeout
        while True:
            try:
                if requests.get(self.url + '/', timeout=1).status_code == 200:
                    return self
            except (requests.ConnectionError, requests.Timeout):  # uwsgi accepts before its workers are ready
                pass
            if time.time() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError('broker did not start:\n' + self.log()[-4000:])
            time.sleep(0.05)

    def stop(self):
        if self.process is not None:
            terminate_pid(self.process.pid, 15, self.process, 'broker')
        _live.discard(self)

    def log(self):
        try:
            with open(self.log_path, errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class BrokerServer(_Process):
    """The development server (``ccagency-broker``) of the checked-out code."""

    def command(self):
        return [sys.executable, '-m', 'cc_agency.broker.devserver', '-c', self.conf_path, '--port', str(self.port)]

    def env(self):
        return dict(super().env(), PYTHONPATH=REPO)


class UwsgiBroker(_Process):
    """uwsgi with the seed's ini (unix `socket`) plus an `http-socket` on 127.0.0.1 for plain HTTP clients."""

    def __init__(self, conf, venv, processes=4, work_dir=None, extra_ini=''):
        super().__init__(conf, work_dir)
        self.venv = venv
        self.socket_path = os.path.join(self.work_dir, 'broker.sock')
        self.ini_path = os.path.join(self.work_dir, 'ccagency-broker.ini')
        wsgi_file = os.path.join(site_packages(venv), 'cc_agency', 'broker', 'app.py')
        with open(self.ini_path, 'w') as f:
            f.write(SEED_INI.format(socket=self.socket_path, wsgi_file=wsgi_file, processes=processes))
            f.write('http-socket = 127.0.0.1:{}\n'.format(self.port))
            f.write(extra_ini)

    def command(self):
        return [UWSGI, '--ini', self.ini_path]

    def env(self):
        return dict(super().env(), VIRTUAL_ENV=self.venv)

    def stop(self):
        """The seed's ini has no `master`: the process we started is the first worker and forked the others. SIGINT
        ends it (SIGTERM would only reload it), then each forked worker that is left gets SIGKILL by its PID."""
        if self.process is None:
            return
        workers = children(self.process.pid)
        if self.process.poll() is None:
            signal_pid(self.process.pid, signal.SIGINT)
            wait_pid_gone(self.process.pid, 15, self.process)
        super().stop()  # SIGTERM, then SIGKILL, if the master is still there
        for pid in workers:
            if pid_alive(pid):
                signal_pid(pid, signal.SIGKILL)
                wait_pid_gone(pid, 10)


def children(pid):
    """PIDs whose parent is `pid` (from /proc)."""
    found = []
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open('/proc/{}/stat'.format(entry)) as f:
                    if int(f.read().rsplit(')', 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return found


def site_packages(venv):
    version = subprocess.run([os.path.join(venv, 'bin', 'python'), '-c',
                              'import sys; print("python%d.%d" % sys.version_info[:2])'],
                             capture_output=True, text=True, check=True).stdout.strip()
    return os.path.join(venv, 'lib', version, 'site-packages')


def make_uwsgi_venv(path):
    """A venv of Debian's python3 (the one uwsgi-plugin-python3 embeds) with this repository installed, as the
    seed's install steps make it (`python3 -m venv ~/ccagency-venv && pip install cc-agency`). An existing venv
    at `path` only gets the repository's current code again."""
    if not os.access(DEBIAN_PYTHON, os.X_OK) or not os.access(UWSGI, os.X_OK):
        raise RuntimeError('uwsgi tests need Debian packages uwsgi, uwsgi-plugin-python3 and python3-venv')
    pip = [os.path.join(path, 'bin', 'pip'), 'install', '--quiet']
    if os.access(os.path.join(path, 'bin', 'pip'), os.X_OK):
        pip += ['--no-deps', '--force-reinstall']
    else:
        subprocess.run([DEBIAN_PYTHON, '-m', 'venv', path], check=True, capture_output=True)
    result = subprocess.run(pip + [REPO], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError('pip install into {} failed:\n{}'.format(path, result.stderr[-4000:]))
    return path


def uwsgi_request(socket_path, method, path, headers=None, body=b'', timeout=30):
    """One request over the uwsgi protocol on a unix socket -> (status, headers dict, body bytes)."""
    path_info, _, query = path.partition('?')
    env = {'REQUEST_METHOD': method, 'PATH_INFO': path_info, 'QUERY_STRING': query, 'REQUEST_URI': path,
           'SERVER_NAME': 'localhost', 'SERVER_PORT': '80', 'SERVER_PROTOCOL': 'HTTP/1.1', 'HTTP_HOST': 'localhost',
           'REMOTE_ADDR': '127.0.0.1', 'CONTENT_LENGTH': str(len(body))}
    for name, value in (headers or {}).items():
        key = name.upper().replace('-', '_')
        env[key if key == 'CONTENT_TYPE' else 'HTTP_' + key] = value
    payload = b''.join(struct.pack('<H', len(k.encode())) + k.encode() + struct.pack('<H', len(v.encode())) + v.encode()
                       for k, v in env.items())
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(socket_path)
        sock.sendall(struct.pack('<BHB', 0, len(payload), 0) + payload + body)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    head, _, content = b''.join(chunks).partition(b'\r\n\r\n')
    status_line, *header_lines = head.decode('latin-1').split('\r\n')
    response_headers = dict(line.split(': ', 1) for line in header_lines if ': ' in line)
    return int(status_line.split()[1]), response_headers, content
