"""Docker engines for tests: several independent dockerd "nodes" on this one machine.

Each ``DockerEngine`` is one ``dockerd`` with everything of its own below a short base directory
(``/tmp/cca/n<random>``; unix socket paths are limited to 107 bytes): ``--data-root``, ``--exec-root`` (its own
containerd lives there), ``--pidfile``, the unix socket, and ``--config-file daemon.json`` whose
``deprecated-key-path`` gives every engine its own ID (``info()['ID']``; otherwise all engines on a host report the
same). Engines never touch the host's network: ``--bridge=none`` and no iptables/forwarding; containers must use
``network_mode="host"`` (to reach a server on 127.0.0.1) or ``"none"``. Containers land in the cgroup
``--cgroup-parent=/cca-<base name>``, unique to the engine, so leftovers can be found and killed.

Processes are only ever signalled by PID, after checking that the PID's command line is this engine's.
Engines that are still running when the interpreter exits are stopped and their directories removed.
"""

import atexit
import concurrent.futures
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

from .processes import cmdline, free_port, pid_alive, signal_pid, terminate_pid, wait_pid_gone

ENGINE_ROOT = os.environ.get('CC_ENGINE_ROOT', '/tmp/cca')
API_VERSION = '1.41'    # dockerd 20.10 (Debian 12); docker SDK 7.1 defaults to 1.44, which 20.10 refuses
NETWORK_FLAGS = ['--bridge=none', '--iptables=false', '--ip-masq=false', '--ip-forward=false',
                 '--ip6tables=false']
SOCKET_PATH_MAX = 107


class EngineError(RuntimeError):
    pass


# ---------------------------------------------------------------------------------------------------- mounts

def mount_points_below(directory):
    """Mount points at or below directory, deepest first."""
    directory = directory.rstrip('/') + '/'
    found = []
    with open('/proc/self/mountinfo') as f:
        for line in f:
            point = line.split()[4]
            point = point.replace('\\040', ' ').replace('\\011', '\t').replace('\\012', '\n').replace('\\134', '\\')
            if (point + '/').startswith(directory):
                found.append(point)
    return sorted(set(found), key=len, reverse=True)


_libc = None


def umount_lazy(path):
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    mnt_detach = 2
    return _libc.umount2(path.encode(), mnt_detach) == 0


# ---------------------------------------------------------------------------------------------------- TLS

def make_ca(directory, san='DNS:localhost,IP:127.0.0.1,IP:::1', days=825):
    """A CA, a dockerd server certificate (SAN: loopback) and a client certificate, made with openssl.

    Files (the names that `docker --tlsverify` and DOCKER_CERT_PATH expect): ca.pem, ca-key.pem,
    server-cert.pem, server-key.pem, cert.pem, key.pem. Returns a dict of their paths. The docker SDK checks the
    server's SAN against the host of base_url, so tcp://127.0.0.1:P needs IP:127.0.0.1.
    """
    os.makedirs(directory, exist_ok=True)
    paths = {name: os.path.join(directory, name) for name in (
        'ca.pem', 'ca-key.pem', 'server-cert.pem', 'server-key.pem', 'cert.pem', 'key.pem')}
    if all(os.path.exists(p) for p in paths.values()):
        return paths

    def openssl(*args):
        result = subprocess.run(['openssl'] + list(args), cwd=directory, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, universal_newlines=True)
        if result.returncode != 0:
            raise EngineError('openssl {} failed:\n{}'.format(' '.join(args), result.stdout))

    with open(os.path.join(directory, 'server-ext.cnf'), 'w') as f:
        f.write('subjectAltName = {}\nextendedKeyUsage = serverAuth\n'.format(san))
    with open(os.path.join(directory, 'client-ext.cnf'), 'w') as f:
        f.write('extendedKeyUsage = clientAuth\n')
    for key in ('ca-key.pem', 'server-key.pem', 'key.pem'):
        openssl('genrsa', '-out', key, '2048')
    openssl('req', '-new', '-x509', '-days', str(days), '-key', 'ca-key.pem', '-sha256', '-subj', '/CN=cc-test-ca',
            '-out', 'ca.pem')
    openssl('req', '-new', '-sha256', '-key', 'server-key.pem', '-subj', '/CN=localhost', '-out', 'server.csr')
    openssl('x509', '-req', '-days', str(days), '-sha256', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey',
            'ca-key.pem', '-CAcreateserial', '-out', 'server-cert.pem', '-extfile', 'server-ext.cnf')
    openssl('req', '-new', '-key', 'key.pem', '-subj', '/CN=cc-agency', '-out', 'client.csr')
    openssl('x509', '-req', '-days', str(days), '-sha256', '-in', 'client.csr', '-CA', 'ca.pem', '-CAkey',
            'ca-key.pem', '-CAcreateserial', '-out', 'cert.pem', '-extfile', 'client-ext.cnf')
    for leftover in ('server.csr', 'client.csr', 'server-ext.cnf', 'client-ext.cnf', 'ca.srl'):
        try:
            os.unlink(os.path.join(directory, leftover))
        except FileNotFoundError:
            pass
    for key in ('ca-key.pem', 'server-key.pem', 'key.pem'):
        os.chmod(paths[key], 0o600)
    return paths


# ---------------------------------------------------------------------------------------------------- engine

_live_engines = set()
_live_lock = threading.Lock()


class DockerEngine:
    """One dockerd node. ``start()``/``stop()``; faults: ``kill()`` (SIGKILL dockerd only), ``pause()``/``resume()``.

    :param name: node name (label ``cc-test-node=<name>``); defaults to the base directory's name
    :param tcp: also listen on ``tcp://127.0.0.1:<tcp_port>`` (dockerd sleeps 1 s at start for plain TCP)
    :param tls: TCP with ``--tlsverify``; certificates from ``tls_dir`` or made by ``make_ca`` below the base dir
    :param extra_args: more dockerd flags, e.g. ``['--live-restore']``
    :param labels: more engine labels (``key=value``)
    :param shutdown_timeout: seconds dockerd gives running containers when it is stopped
    :param daemon_config: more keys of its daemon.json, e.g. ``{'runtimes': {...}}``
    """

    def __init__(self, name=None, tcp=False, tls=False, tls_dir=None, tcp_port=None, extra_args=(), labels=(),
                 cgroup_parent=None, base_dir=None, root=ENGINE_ROOT, api_version=API_VERSION,
                 shutdown_timeout=3, daemon_config=None):
        if base_dir is None:
            os.makedirs(root, exist_ok=True)
            base_dir = tempfile.mkdtemp(prefix='n', dir=root)
            self._own_base = True
        else:
            os.makedirs(base_dir, exist_ok=True)
            self._own_base = False
        self.base_dir = os.path.abspath(base_dir)
        self.name = name or os.path.basename(self.base_dir)
        self.socket_path = os.path.join(self.base_dir, 'd.sock')
        self.exec_root = os.path.join(self.base_dir, 'x')
        if len(os.path.join(self.exec_root, 'containerd', 'containerd.sock.ttrpc')) >= SOCKET_PATH_MAX:
            raise EngineError('base dir {} is too long for unix socket paths'.format(self.base_dir))
        self.data_root = os.path.join(self.base_dir, 'data')
        self.pidfile = os.path.join(self.base_dir, 'dockerd.pid')
        self.config_file = os.path.join(self.base_dir, 'daemon.json')
        self.log_path = os.path.join(self.base_dir, 'dockerd.log')
        self.cgroup_parent = cgroup_parent or '/cca-' + os.path.basename(self.base_dir)
        self.labels = ['cc-test-node=' + self.name] + list(labels)
        self.tls = bool(tls)
        self.tcp = bool(tcp) or self.tls
        self.tcp_port = tcp_port or (free_port() if self.tcp else None)
        self.tls_dir = tls_dir
        self.extra_args = list(extra_args)
        self.api_version = api_version
        self.shutdown_timeout = shutdown_timeout
        self.daemon_config = dict(daemon_config or {})
        self.pid = None
        self.start_seconds = None
        self._process = None

    def __repr__(self):
        return '<DockerEngine {} pid={} {}>'.format(self.name, self.pid, self.base_url)

    # --------------------------------------------------------------------------------------- addresses, clients

    @property
    def base_url(self):
        return 'unix://' + self.socket_path

    @property
    def tcp_url(self):
        return 'tcp://127.0.0.1:{}'.format(self.tcp_port) if self.tcp else None

    @property
    def tls_files(self):
        """Paths of the certificates (see make_ca) when the engine uses TLS, else None."""
        if not self.tls:
            return None
        return {n: os.path.join(self.tls_dir, n) for n in ('ca.pem', 'cert.pem', 'key.pem',
                                                           'server-cert.pem', 'server-key.pem')}

    def tls_config(self):
        import docker.tls
        files = self.tls_files
        return docker.tls.TLSConfig(ca_cert=files['ca.pem'], client_cert=(files['cert.pem'], files['key.pem']),
                                    verify=files['ca.pem'])

    def client(self, tcp=None, timeout=60, version=None):
        """A docker.DockerClient for this engine: over TCP (TLS when enabled) if tcp (default: when listening on
        TCP), else the unix socket. trust_env is off, so REQUESTS_CA_BUNDLE & co cannot replace the TLS CA."""
        import docker
        use_tcp = self.tcp if tcp is None else tcp
        if use_tcp and not self.tcp:
            raise EngineError('engine {} does not listen on TCP'.format(self.name))
        client = docker.DockerClient(base_url=self.tcp_url if use_tcp else self.base_url,
                                     version=version or self.api_version, timeout=timeout,
                                     tls=self.tls_config() if (use_tcp and self.tls) else False)
        client.api.trust_env = False
        return client

    # --------------------------------------------------------------------------------------- life cycle

    def _pid_is_ours(self, pid):
        line = cmdline(pid)
        return pid_alive(pid) and line is not None and '--data-root {} '.format(self.data_root) in line + ' '

    @property
    def running(self):
        return self.pid is not None and self._pid_is_ours(self.pid)

    def ping(self, timeout=1.0):
        """True when the engine answers GET /_ping on its unix socket."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(timeout)
                s.connect(self.socket_path)
                s.sendall(b'GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n')
                answer = b''
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    answer += chunk
            return answer.startswith(b'HTTP/1.') and b' 200 ' in answer.split(b'\r\n', 1)[0]
        except OSError:
            return False

    def command(self):
        args = ['dockerd',
                '--config-file', self.config_file,
                '--data-root', self.data_root,
                '--exec-root', self.exec_root,
                '--pidfile', self.pidfile,
                '-H', self.base_url]
        if self.tcp:
            args += ['-H', self.tcp_url]
            if self.tls:
                files = self.tls_files
                args += ['--tlsverify', '--tlscacert', files['ca.pem'], '--tlscert', files['server-cert.pem'],
                         '--tlskey', files['server-key.pem']]
        args += NETWORK_FLAGS
        args += ['--cgroup-parent', self.cgroup_parent, '--shutdown-timeout', str(self.shutdown_timeout)]
        for label in self.labels:
            args += ['--label', label]
        return args + self.extra_args

    def start(self, timeout=60):
        """Starts dockerd (if not running) and waits until it answers /_ping. Returns self."""
        if self.running:
            return self
        if os.path.exists(self.pidfile):
            try:
                with open(self.pidfile) as f:
                    old = int(f.read().strip() or 0)
            except (OSError, ValueError):
                old = 0
            if old and self._pid_is_ours(old):
                raise EngineError('engine {} already runs as pid {} (not started by this object)'.format(
                    self.name, old))
            os.unlink(self.pidfile)   # a killed dockerd leaves it behind and refuses to start while it exists
        # dockerd's containerd dies with it (parent-death signal) but stays a zombie until PID 1 reaps it, which
        # takes ~1.5 s on these machines; a new dockerd that finds it in containerd.pid waits for it and gives
        # up ("timeout waiting for containerd to start"). A dead process's pidfile can go.
        containerd_pidfile = os.path.join(self.exec_root, 'containerd', 'containerd.pid')
        try:
            with open(containerd_pidfile) as f:
                containerd_pid = int(f.read().strip() or 0)
            if not pid_alive(containerd_pid):
                os.unlink(containerd_pidfile)
        except (OSError, ValueError):
            pass
        os.makedirs(self.data_root, exist_ok=True)
        os.makedirs(self.exec_root, exist_ok=True)
        with open(self.config_file, 'w') as f:
            json.dump(dict(self.daemon_config, **{'deprecated-key-path': os.path.join(self.base_dir, 'key.json')}), f)
        if self.tls and self.tls_dir is None:
            self.tls_dir = os.path.join(self.base_dir, 'tls')
        if self.tls:
            make_ca(self.tls_dir)
        if shutil.which('dockerd') is None:
            raise EngineError('dockerd not found (apt-get install docker.io)')
        t0 = time.monotonic()
        with open(self.log_path, 'ab') as log:
            self._process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self._process.pid
        with _live_lock:
            _live_engines.add(self)
        deadline = t0 + timeout
        while not self.ping():
            if self._process.poll() is not None:
                raise EngineError('dockerd of {} exited with {}:\n{}'.format(
                    self.name, self._process.returncode, self.log_tail()))
            if time.monotonic() > deadline:
                self.stop()
                raise EngineError('dockerd of {} did not answer /_ping within {} s:\n{}'.format(
                    self.name, timeout, self.log_tail()))
            time.sleep(0.02)
        self.start_seconds = time.monotonic() - t0
        return self

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, errors='replace') as f:
                return ''.join(f.readlines()[-lines:])
        except OSError:
            return ''

    def stop(self, timeout=30, remove=False, kill_containers=True):
        """SIGTERM dockerd (SIGKILL after timeout), then kill what it left (containerd, shims, container
        processes of this engine's cgroup), unmount everything below the base dir; remove=True deletes it.

        kill_containers: SIGKILL the containers' processes first. dockerd's own shutdown gives every running
        container its stop timeout (10 s by default, whatever --shutdown-timeout says) to exit; a test teardown
        does not need that. Pass False to test a graceful engine shutdown.
        """
        if self.pid is not None and self._pid_is_ours(self.pid):
            if kill_containers:
                self._kill_container_processes()
            terminate_pid(self.pid, timeout, self._process, 'dockerd')
        elif self._process is not None:
            self._process.poll()
        self._clean_leftovers()
        with _live_lock:
            _live_engines.discard(self)
        if remove:
            self.remove()

    def remove(self):
        """Deletes the base directory (the engine must be stopped)."""
        if self.running:
            raise EngineError('engine {} still runs'.format(self.name))
        for point in mount_points_below(self.base_dir):
            umount_lazy(point)
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def kill(self):
        """SIGKILL dockerd only (a crashed engine): containerd, shims and containers keep running; the pidfile
        stays. start() works again afterwards."""
        if self.pid is not None and self._pid_is_ours(self.pid):
            signal_pid(self.pid, signal.SIGKILL)
            wait_pid_gone(self.pid, 10, self._process)

    def pause(self):
        """SIGSTOP dockerd (a hung engine): calls time out, wait()/events() block until resume()."""
        if self.running:
            signal_pid(self.pid, signal.SIGSTOP)

    def resume(self):
        if self.pid is not None and pid_alive(self.pid):
            signal_pid(self.pid, signal.SIGCONT)

    def restart(self, timeout=60):
        self.stop()
        return self.start(timeout)

    def _leftover_pids(self):
        containerd_sock = os.path.join(self.exec_root, 'containerd', 'containerd.sock')
        pids = set()
        try:
            with open(os.path.join(self.exec_root, 'containerd', 'containerd.pid')) as f:
                pid = int(f.read().strip())
            line = cmdline(pid)
            if line and self.exec_root + '/' in line:
                pids.add(pid)
        except (OSError, ValueError):
            pass
        for entry in os.listdir('/proc'):
            if entry.isdigit():
                line = cmdline(entry)
                if line and ('-address ' + containerd_sock + ' ') in line + ' ':
                    pids.add(int(entry))
        return pids

    def _cgroup_dirs(self):
        parent = self.cgroup_parent.strip('/')
        dirs = []
        if os.path.isdir('/sys/fs/cgroup'):
            for controller in os.listdir('/sys/fs/cgroup'):
                candidate = os.path.join('/sys/fs/cgroup', controller, parent)
                if os.path.isdir(candidate):
                    dirs.append(candidate)
            if os.path.isdir(os.path.join('/sys/fs/cgroup', parent)):   # cgroup v2
                dirs.append(os.path.join('/sys/fs/cgroup', parent))
        return dirs

    def _kill_container_processes(self):
        """SIGKILL every process in this engine's cgroup parent (its containers' processes, nothing else)."""
        killed = False
        for top in self._cgroup_dirs():
            for root, _dirs, files in os.walk(top):
                if 'cgroup.procs' in files:
                    try:
                        with open(os.path.join(root, 'cgroup.procs')) as f:
                            for pid in f.read().split():
                                killed = signal_pid(int(pid), signal.SIGKILL) or killed
                    except OSError:
                        pass
        return killed

    def _clean_leftovers(self):
        for pid in self._leftover_pids():
            signal_pid(pid, signal.SIGKILL)
        for pid in self._leftover_pids():
            wait_pid_gone(pid, 5)
        # container processes of this engine (only left when its dockerd/shims died hard)
        self._kill_container_processes()
        for top in self._cgroup_dirs():
            for _ in range(50):
                for root, dirs, _files in os.walk(top, topdown=False):
                    try:
                        os.rmdir(root)
                    except OSError:
                        pass
                if not os.path.isdir(top):
                    break
                time.sleep(0.05)
        for point in mount_points_below(self.base_dir):
            umount_lazy(point)

    def info(self):
        client = self.client()
        try:
            return client.info()
        finally:
            client.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop(remove=self._own_base)


def start_engines(n, names=None, **kwargs):
    """Starts n engines in parallel threads; on any failure stops those that started and raises.

    kwargs go to DockerEngine (tcp, tls, extra_args, ...); names default to node1..nodeN.
    """
    names = names or ['node{}'.format(i + 1) for i in range(n)]
    engines = [DockerEngine(name=names[i], **kwargs) for i in range(n)]
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(engine.start) for engine in engines]
        errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        stop_engines(engines)
        raise errors[0]
    return engines


def stop_engines(engines, remove=True):
    """Stops engines in parallel (removing the base dirs they created when remove)."""
    engines = list(engines)
    if not engines:
        return
    with concurrent.futures.ThreadPoolExecutor(len(engines)) as pool:
        futures = [pool.submit(e.stop, remove=remove and e._own_base) for e in engines]
        errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        raise errors[0]


@atexit.register
def _stop_live_engines():
    with _live_lock:
        engines = list(_live_engines)
    for engine in engines:
        try:
            engine.stop(remove=engine._own_base)
        except Exception:   # best effort at exit
            pass
