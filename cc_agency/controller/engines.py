"""One adapter per Docker engine: every call the controller makes to a node goes through here, with a timeout.

The adapter speaks the low-level docker API (one HTTP call per operation), hides TLS set-up, classifies errors
(permanent image problems vs. a node that is unreachable), and pulls each image at most once per node at a time.
`wait()` is the only call without a timeout: it blocks until the container exits, which is how the controller
learns of an exit without polling.
"""
import logging
import threading

import docker
import docker.errors
import requests
import requests.adapters
from docker.utils import parse_repository_tag

log = logging.getLogger(__name__)

BATCH_LABEL = 'cc-agency.batch'
ATTEMPT_LABEL = 'cc-agency.attempt'
EXPERIMENT_LABEL = 'cc-agency.experiment'


class EngineError(Exception):
    """The engine could not be reached or failed in a way that says nothing about the batch."""


class ImageError(Exception):
    """The image cannot be had on this node; `permanent` when retrying cannot help (not found, unauthorized)."""

    def __init__(self, message, permanent):
        super().__init__(message)
        self.permanent = permanent


class _NoHostnameCheckAdapter(requests.adapters.HTTPAdapter):
    """TLS with `assert_hostname: False` (seed config): verify the certificate chain, not the host name."""

    def init_poolmanager(self, *args, **kwargs):
        kwargs['assert_hostname'] = False
        super().init_poolmanager(*args, **kwargs)


def tls_config(tls):
    """docker TLSConfig from the seed's `tls` section (verify: CA path or bool; client_cert: [cert, key])."""
    if not tls:
        return False
    verify = tls.get('verify', True)
    ca_cert = verify if isinstance(verify, str) else None
    client_cert = tuple(tls['client_cert']) if tls.get('client_cert') else None
    return docker.tls.TLSConfig(client_cert=client_cert, ca_cert=ca_cert, verify=bool(verify))


def image_reference(url):
    repository, tag = parse_repository_tag(url)
    return repository, tag or 'latest'


def _is_permanent_pull_error(error):
    text = str(error).lower()
    status = getattr(getattr(error, 'response', None), 'status_code', None)
    return status in (401, 403, 404) or any(marker in text for marker in (
        'not found', 'manifest unknown', 'unauthorized', 'access denied', 'authentication required',
        'invalid reference format', 'repository does not exist', 'no basic auth credentials'))


class Engine:
    """The controller's handle on one node (`controller.docker.nodes.NAME`)."""

    def __init__(self, name, node_conf, api_timeout_s):
        self.name = name
        self.conf = node_conf
        self.api_timeout_s = api_timeout_s
        self._api = None
        self._lock = threading.Lock()
        self._images_present = set()
        self._image_locks = {}

    # --- connection -------------------------------------------------------------------------------------------
    def _client(self):
        with self._lock:
            if self._api is None:
                try:
                    api = docker.APIClient(base_url=self.conf['base_url'], tls=tls_config(self.conf.get('tls')),
                                           timeout=self.api_timeout_s, version='auto', max_pool_size=32)
                except (docker.errors.DockerException, requests.RequestException) as e:
                    raise EngineError('cannot connect to {}: {}'.format(self.conf['base_url'], e))
                api.trust_env = False  # REQUESTS_CA_BUNDLE would silently replace the node's CA
                tls = self.conf.get('tls') or {}
                if tls and tls.get('assert_hostname') is False:
                    api.mount('https://', _NoHostnameCheckAdapter(pool_maxsize=32))
                self._api = api
            return self._api

    def reset(self):
        """Forget the connection (after the engine went away); the next call reconnects."""
        with self._lock:
            api, self._api = self._api, None
            self._images_present.clear()
        if api is not None:
            api.close()

    def _call(self, what, function, *args, **kwargs):
        try:
            return function(self._client(), *args, **kwargs)
        except docker.errors.APIError:
            raise
        except (requests.RequestException, docker.errors.DockerException, OSError) as e:
            raise EngineError('node {}: {} failed: {}'.format(self.name, what, type(e).__name__))

    def info(self):
        """RAM (MiB), CPUs and identity of the engine."""
        info = self._call('info', lambda api: api.info())
        return {'ramMiB': info['MemTotal'] // (1024 * 1024), 'cpus': info['NCPU'], 'engineId': info.get('ID'),
                'serverVersion': info.get('ServerVersion')}

    def ping(self, timeout_s=None):
        """A cheap liveness check with its own (short) timeout; APIClient is a requests.Session."""
        self._call('ping', lambda api: api.get(api.base_url + '/_ping', timeout=timeout_s or self.api_timeout_s)
                   .raise_for_status())

    # --- images -----------------------------------------------------------------------------------------------
    def ensure_image(self, url, auth=None, disable_pull=False):
        """Make sure `url` is on this node: used as it is when present, else pulled (once per node at a time)."""
        if url in self._images_present:
            return False
        with self._lock:
            image_lock = self._image_locks.setdefault(url, threading.Lock())
        with image_lock:
            if url in self._images_present:
                return False
            try:
                self._call('inspect image', lambda api: api.inspect_image(url))
                self._images_present.add(url)
                return False
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as e:
                raise ImageError('image {} cannot be inspected on node {}: {}'.format(url, self.name, e.explanation), False)
            if disable_pull:
                raise ImageError('image {} is not on node {} and pulling is disabled'.format(url, self.name), True)
            repository, tag = image_reference(url)
            try:
                self._call('pull', lambda api: api.pull(repository, tag=tag, auth_config=auth or None))
            except docker.errors.APIError as e:
                reason = 'image {} could not be pulled on node {}: {}'.format(url, self.name, e.explanation or e)
                raise ImageError(reason, _is_permanent_pull_error(e))
            self._images_present.add(url)
            log.info('node %s: pulled image %s', self.name, url)
            return True

    # --- containers -------------------------------------------------------------------------------------------
    def create_container(self, name, image, entrypoint, labels, ram_mib, environment=None, network=None,
                         gpu_ids=(), user=None):
        def create(api):
            host_config = api.create_host_config(
                mem_limit='{}m'.format(ram_mib), memswap_limit='{}m'.format(ram_mib),
                network_mode=network, device_requests=_gpu_requests(gpu_ids),
                security_opt=['no-new-privileges'])
            env = dict(environment or {})
            if gpu_ids:
                env['NVIDIA_VISIBLE_DEVICES'] = ','.join(str(i) for i in gpu_ids)
            return api.create_container(image, entrypoint=entrypoint, command=[], name=name, labels=labels,
                                        environment=env, host_config=host_config, user=user)['Id']
        return self._call('create container', create)

    def put_archive(self, container_id, path, data):
        return self._call('put archive', lambda api: api.put_archive(container_id, path, data))

    def start(self, container_id):
        self._call('start', lambda api: api.start(container_id))

    def wait(self, container_id):
        """Block until the container exits (no timeout); returns its exit code."""
        result = self._call('wait', lambda api: api.wait(container_id, timeout=None))
        return result.get('StatusCode')

    def inspect(self, container_id):
        return self._call('inspect container', lambda api: api.inspect_container(container_id))

    def logs(self, container_id, stdout=True, stderr=False):
        return self._call('logs', lambda api: api.logs(container_id, stdout=stdout, stderr=stderr))

    def remove(self, container_id):
        """Remove a container (killing it if it runs); a container that is already gone is fine."""
        try:
            self._call('remove', lambda api: api.remove_container(container_id, force=True))
        except docker.errors.NotFound:
            pass

    def batch_containers(self):
        """Every container of this agency on the node: [{id, batchId, attempt, running}]."""
        containers = self._call('list', lambda api: api.containers(all=True, filters={'label': BATCH_LABEL}))
        return [{'id': c['Id'], 'batchId': c['Labels'].get(BATCH_LABEL), 'attempt': int(c['Labels'].get(ATTEMPT_LABEL, 0)),
                 'running': c['State'] in ('running', 'created', 'restarting', 'paused')} for c in containers]


def _gpu_requests(gpu_ids):
    if not gpu_ids:
        return None
    return [docker.types.DeviceRequest(driver='nvidia', device_ids=[str(i) for i in gpu_ids], capabilities=[['gpu']])]
