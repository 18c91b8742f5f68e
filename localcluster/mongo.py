"""A MongoDB-wire server for tests: SecantusDB (``secantusd-py``) as a separate process on 127.0.0.1.

No ``mongod`` can be installed on the test machines; SecantusDB speaks the MongoDB wire protocol on WiredTiger
storage and pymongo 4 talks to it unchanged. It advertises a one-node replica set (change streams and transactions
work), so the plain URI ``mongodb://127.0.0.1:<port>/`` is enough.

The binary comes from ``$CC_SECANTUSD``, else ``<repo>/.cache/secantus-venv/bin/secantusd-py`` (made by
``.ci/run``), else ``/tmp/secantus-venv/bin/secantusd-py``. It always gets ``--config`` with an empty file (without
it, a stray ``secantusd.toml`` would be read). The product never imports SecantusDB.
"""

import atexit
import collections
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from pymongo import monitoring

from .processes import free_port, pid_alive, signal_pid, terminate_pid, wait_pid_gone

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BINARIES = (str(REPO_ROOT / '.cache' / 'secantus-venv' / 'bin' / 'secantusd-py'),
                    '/tmp/secantus-venv/bin/secantusd-py')


class MongoServerError(RuntimeError):
    pass


def find_secantusd():
    configured = os.environ.get('CC_SECANTUSD')
    if configured:
        if not os.access(configured, os.X_OK):
            raise MongoServerError('CC_SECANTUSD={} is not an executable'.format(configured))
        return configured
    for candidate in DEFAULT_BINARIES:
        if os.access(candidate, os.X_OK):
            return candidate
    raise MongoServerError('secantusd-py not found (tried {}); create it with: python3 -m venv '
                           '.cache/secantus-venv && .cache/secantus-venv/bin/pip install SecantusDB==0.7.0b3, '
                           'or set CC_SECANTUSD'.format(', '.join(DEFAULT_BINARIES)))


_live_servers = set()
_live_lock = threading.Lock()


class MongoServer:
    """One secantusd-py process. ``start()``, ``stop()`` (SIGTERM, then SIGKILL), ``kill()`` (SIGKILL),
    ``restart()`` (same port, same data).

    :param storage_path: WiredTiger directory; default: a new temporary directory, deleted by ``remove()``
    :param port: default: a free port, kept across restarts
    :param extra_args: more secantusd-py flags (e.g. ``['--auth']``)
    """

    def __init__(self, storage_path=None, port=None, binary=None, log_level='WARNING', extra_args=(),
                 work_dir=None):
        self.binary = binary or find_secantusd()
        self.work_dir = work_dir or tempfile.mkdtemp(prefix='cca-mongo-')
        self._own_work_dir = work_dir is None
        self.storage_path = storage_path or os.path.join(self.work_dir, 'data')
        self.port = port or free_port()
        self.host = '127.0.0.1'
        self.log_level = log_level
        self.extra_args = list(extra_args)
        self.config_path = os.path.join(self.work_dir, 'empty.toml')
        self.log_path = os.path.join(self.work_dir, 'secantusd.log')
        self.pid = None
        self.start_seconds = None
        self._process = None

    def __repr__(self):
        return '<MongoServer pid={} {}>'.format(self.pid, self.uri)

    @property
    def uri(self):
        return 'mongodb://{}:{}/'.format(self.host, self.port)

    @property
    def running(self):
        return self._process is not None and self._process.poll() is None and pid_alive(self.pid)

    def client(self, **kwargs):
        """A new pymongo.MongoClient for this server (the caller closes it)."""
        import pymongo
        kwargs.setdefault('serverSelectionTimeoutMS', 10000)
        return pymongo.MongoClient(self.uri, **kwargs)

    def command(self):
        return [self.binary, '--config', self.config_path, '--host', self.host, '--port', str(self.port),
                '--storage-path', self.storage_path, '--log-level', self.log_level] + self.extra_args

    def ping(self, timeout_ms=500):
        import pymongo
        import pymongo.errors
        client = pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms)
        try:
            client.admin.command('ping')
            return True
        except pymongo.errors.PyMongoError:
            return False
        finally:
            client.close()

    def start(self, timeout=60):
        """Starts the server (if not running) and waits until pymongo can ping it. Returns self."""
        if self.running:
            return self
        os.makedirs(self.work_dir, exist_ok=True)
        open(self.config_path, 'w').close()
        t0 = time.monotonic()
        with open(self.log_path, 'ab') as log:
            self._process = subprocess.Popen(self.command(), cwd=self.work_dir, stdin=subprocess.DEVNULL,
                                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self._process.pid
        with _live_lock:
            _live_servers.add(self)
        deadline = t0 + timeout
        while not self.ping():
            if self._process.poll() is not None:
                raise MongoServerError('secantusd-py exited with {}:\n{}'.format(
                    self._process.returncode, self.log_tail()))
            if time.monotonic() > deadline:
                self.stop()
                raise MongoServerError('secantusd-py did not answer ping within {} s:\n{}'.format(
                    timeout, self.log_tail()))
            time.sleep(0.05)
        self.start_seconds = time.monotonic() - t0
        return self

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, errors='replace') as f:
                return ''.join(f.readlines()[-lines:])
        except OSError:
            return ''

    def stop(self, timeout=15):
        """SIGTERM (clean shutdown, ~2 s), SIGKILL after timeout. Data stays."""
        if self._process is not None:
            terminate_pid(self.pid, timeout, self._process, 'secantusd-py')
        with _live_lock:
            _live_servers.discard(self)

    def kill(self):
        """SIGKILL (a crash). Data stays; acknowledged journaled writes survive."""
        if self._process is not None and self._process.poll() is None:
            signal_pid(self.pid, signal.SIGKILL)
            wait_pid_gone(self.pid, 10, self._process)

    def pause(self):
        """SIGSTOP (a hung server)."""
        if self.running:
            signal_pid(self.pid, signal.SIGSTOP)

    def resume(self):
        if self.pid is not None and pid_alive(self.pid):
            signal_pid(self.pid, signal.SIGCONT)

    def restart(self, timeout=60):
        """Stops (if running) and starts again on the same port with the same data."""
        self.stop()
        return self.start(timeout)

    def remove(self):
        """Deletes the temporary directory (data, log) this object created; the server must be stopped."""
        if self.running:
            raise MongoServerError('server still runs')
        if self._own_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        self.remove()


@atexit.register
def _stop_live_servers():
    with _live_lock:
        servers = list(_live_servers)
    for server in servers:
        try:
            server.stop()
            server.remove()
        except Exception:   # best effort at exit
            pass


class CommandCounter(monitoring.CommandListener):
    """A pymongo command listener: round trips (commands) by name, and documents returned by find/getMore.

    Pass it as ``event_listeners=[counter]`` to a MongoClient; ``reset()`` between measurements.
    """

    def __init__(self):
        self.commands = collections.Counter()
        self.documents = 0
        self.lock = threading.Lock()

    def reset(self):
        with self.lock:
            self.commands.clear()
            self.documents = 0

    def started(self, event):
        with self.lock:
            self.commands[event.command_name] += 1

    def succeeded(self, event):
        cursor = event.reply.get('cursor') if isinstance(event.reply, dict) else None
        if cursor:
            with self.lock:
                self.documents += len(cursor.get('firstBatch', cursor.get('nextBatch', [])))

    def failed(self, event):
        pass
