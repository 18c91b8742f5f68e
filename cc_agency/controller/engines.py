"""One adapter per Docker engine: every call the controller makes to a node goes through here, with a timeout.

The adapter speaks the low-level docker API (one HTTP call per operation), hides TLS set-up, classifies errors
(permanent image problems vs. a node that is unreachable, with a reason an operator can act on: refused, timed out,
TLS certificate rejected), and pulls each image once per node: an image that is there (or was pulled) is never
pulled again by this process, and concurrent batches wait for one pull. `wait()` is the only call without a
timeout: it blocks until the container exits, which is how the controller learns of an exit without polling.

GPUs: a batch gets exactly the device ids placement chose, as an NVIDIA device request (`gpu_access:
device-request`, the default: the engine needs the NVIDIA container toolkit) and as `NVIDIA_VISIBLE_DEVICES`
(what the `nvidia` runtime reads; `gpu_access: environment` passes only that, for engines whose default runtime
is `nvidia`). A batch without GPUs gets `NVIDIA_VISIBLE_DEVICES=void`, so an image that asks for all GPUs (CUDA
images do) cannot reach devices held by other batches.
"""
import logging
import re
import threading

import docker
import docker.errors
import requests
import requests.adapters
from docker.utils import parse_repository_tag

log = logging.getLogger(__name__)

MIN_API_VERSION = '1.24'  # only for the first call, which asks the engine for its own version
GPU_ACCESS_DEVICE_REQUEST = 'device-request'
GPU_ACCESS_ENVIRONMENT = 'environment'

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


class _HostnameCheckAdapter(requests.adapters.HTTPAdapter):
    """TLS with the seed's `assert_hostname`: False verifies the certificate chain but not the host name; a string
    is the name the engine's certificate must carry (instead of the host of base_url)."""

    def __init__(self, assert_hostname, **kwargs):
        self.assert_hostname = assert_hostname
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        kwargs['assert_hostname'] = self.assert_hostname
        super().init_poolmanager(*args, **kwargs)


def tls_config(tls):
    """docker TLSConfig from the seed's `tls` section (verify: CA path or bool; client_cert: [cert, key])."""
    if not tls:
        return False
    verify = tls.get('verify', True)
    ca_cert = verify if isinstance(verify, str) else None
    client_cert = tuple(tls['client_cert']) if tls.get('client_cert') else None
    return docker.tls.TLSConfig(client_cert=client_cert, ca_cert=ca_cert, verify=bool(verify))


_TLS_HINTS = (  # first match wins
    ('hostname mismatch', 'the engine\'s certificate does not name this host (see tls.assert_hostname)'),
    ('address mismatch', 'the engine\'s certificate does not name this host (see tls.assert_hostname)'),
    ("doesn't match", 'the engine\'s certificate does not name this host (see tls.assert_hostname)'),
    ('certificate verify failed', 'the engine\'s certificate is not signed by the CA in tls.verify'),
    ('unknown ca', 'the engine does not accept the client certificate (tls.client_cert): unknown CA'),
    ('bad certificate', 'the engine does not accept the client certificate (tls.client_cert)'),
    ('certificate required', 'the engine requires a client certificate (tls.client_cert)'),
    ('wrong version number', 'the engine does not speak TLS on this port'),
)


def describe_connection_error(error, base_url, timeout_s):
    """One line saying why an engine could not be used: what an operator needs to fix it (no traceback)."""
    text = str(error)
    if isinstance(error, requests.exceptions.SSLError) or 'SSL' in text:
        reason = next((hint for marker, hint in _TLS_HINTS if marker in text.lower()), None)
        detail = re.search(r'\[SSL[^\]]*\].*?(?= \(_ssl|$)', text)
        return 'TLS with {} failed: {}{}'.format(base_url, reason or 'TLS error',
                                                 ' ({})'.format(detail.group(0).strip()) if detail else '')
    lowered = text.lower()
    if isinstance(error, docker.errors.TLSParameterError):
        return 'TLS settings: {}'.format(error)
    if isinstance(error, requests.exceptions.Timeout) or 'timed out' in lowered or 'timeout' in lowered:
        return 'no answer from {} within {} s'.format(base_url, timeout_s)
    if 'refused' in lowered:
        return 'connection to {} refused (is the engine running?)'.format(base_url)
    if 'no such file' in lowered or 'filenotfounderror' in lowered:
        return 'no engine socket at {}'.format(base_url)
    if 'remotedisconnected' in lowered or 'connection aborted' in lowered or 'connection reset' in lowered:
        return 'the engine at {} closed the connection (does it expect TLS? see tls)'.format(base_url)
    if isinstance(error, OSError) and error.strerror:
        return '{}: {}'.format(base_url, error.strerror)
    return 'cannot use {}: {}'.format(base_url, type(error).__name__)


def image_reference(url):
    repository, tag = parse_repository_tag(url)
    return repository, tag or 'latest'


def _is_permanent_pull_error(error):
    text = str(error).lower()
    status = getattr(getattr(error, 'response', None), 'status_code', None)
    return status in (401, 403, 404) or any(marker in text for marker in (
        'not found', 'manifest unknown', 'unauthorized', 'access denied', 'authentication required',
        'invalid reference format', 'repository does not exist', 'no basic auth credentials'))


STARTS_AT_ONCE = 3


class Engine:
    """The controller's handle on one node (`controller.docker.nodes.NAME`)."""

    def __init__(self, name, node_conf, api_timeout_s):
        self.name = name
        self.conf = node_conf
        self.api_timeout_s = api_timeout_s
        # what the node's batches get, from its section of the configuration
        self.environment = node_conf.get('environment')
        self.network = node_conf.get('network')
        self.gpus = node_conf.get('hardware', {}).get('gpus', [])
        self.gpu_access = node_conf.get('hardware', {}).get('gpu_access', GPU_ACCESS_DEVICE_REQUEST)
        self._api = None
        self._lock = threading.Lock()
        self._images_present = set()
        self._image_locks = {}
        # containers being created/started at once: more only queue up inside dockerd and make its calls time out
        self.start_slots = threading.BoundedSemaphore(STARTS_AT_ONCE)

    # --- connection -------------------------------------------------------------------------------------------
    def _client(self):
        with self._lock:
            if self._api is None:
                base_url = self.conf['base_url']
                tls = self.conf.get('tls') or {}
                try:
                    # the engine's API version is asked with the TLS settings of this node (docker's 'auto' asks
                    # before they are complete), then the client that is kept speaks that version
                    probe = api_client(base_url, tls, self.api_timeout_s, MIN_API_VERSION)
                    try:
                        version = probe.version(api_version=False)['ApiVersion']
                    finally:
                        probe.close()
                    api = api_client(base_url, tls, self.api_timeout_s, version)
                except (docker.errors.DockerException, requests.RequestException, OSError) as e:
                    raise EngineError('node {}: cannot connect: {}'.format(
                        self.name, describe_connection_error(e, base_url, self.api_timeout_s)))
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
            raise EngineError('node {}: {} failed: {}'.format(self.name, what, describe_connection_error(
                e, self.conf['base_url'], self.api_timeout_s)))

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
                mem_limit='{}m'.format(ram_mib), memswap_limit='{}m'.format(ram_mib), network_mode=network,
                device_requests=_gpu_requests(gpu_ids) if self.gpu_access == GPU_ACCESS_DEVICE_REQUEST else None,
                security_opt=['no-new-privileges'])
            env = dict(environment or {})
            env['NVIDIA_VISIBLE_DEVICES'] = ','.join(str(i) for i in gpu_ids) if gpu_ids else 'void'
            return api.create_container(image, entrypoint=entrypoint, command=[], name=name, labels=labels,
                                        environment=env, host_config=host_config, user=user)['Id']
        try:
            return self._call('create container', create)
        except docker.errors.ImageNotFound:
            # removed from the node behind our back: the next attempt pulls it again
            self._images_present.discard(image)
            raise EngineError('node {}: image {} vanished from the node before its container was created'.format(
                self.name, image))

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
        """What the container wrote on stdout and/or stderr, as bytes (one call: unlike the SDK's `logs()`, no
        inspect first to learn whether it has a TTY; the agency's containers never have one)."""
        streams = self._call('logs', lambda api: demultiplex(api_get(
            api, '/containers/{}/logs'.format(container_id), stdout=int(stdout), stderr=int(stderr), tail='all')))
        return b''.join(streams[number] for number, wanted in ((1, stdout), (2, stderr)) if wanted)

    def remove(self, container_id):
        """Remove a container (killing it if it runs); a container that is already gone is fine."""
        try:
            self._call('remove', lambda api: api.remove_container(container_id, force=True))
        except docker.errors.NotFound:
            pass

    def find_batch_container(self, batch_id, attempt):
        """{id, state} of the container of one attempt of a batch, or None."""
        containers = self._call('list', lambda api: api.containers(all=True, filters={'label': [
            '{}={}'.format(BATCH_LABEL, batch_id), '{}={}'.format(ATTEMPT_LABEL, attempt)]}))
        return {'id': containers[0]['Id'], 'state': containers[0]['State']} if containers else None

    def stderr_contains(self, container_id, needle):
        """Follow the container's stderr until `needle` (bytes) shows: True; False when the container ended
        without it; None when the engine sent nothing for api_timeout_seconds (call again to go on waiting)."""
        tail = b''
        try:
            for chunk in self._client().logs(container_id, stream=True, follow=True, stdout=False, stderr=True):
                tail = (tail + chunk)[-(len(needle) + 65536):]
                if needle in tail:
                    return True
        except docker.errors.NotFound:
            return False
        except (requests.RequestException, OSError):
            return None
        return False

    def batch_containers(self):
        """Every container of this agency on the node: [{id, batchId, attempt, running}]."""
        containers = self._call('list', lambda api: api.containers(all=True, filters={'label': BATCH_LABEL}))
        return [{'id': c['Id'], 'batchId': c['Labels'].get(BATCH_LABEL), 'attempt': int(c['Labels'].get(ATTEMPT_LABEL, 0)),
                 'running': c['State'] in ('running', 'created', 'restarting', 'paused')} for c in containers]


def api_client(base_url, tls, timeout_s, version):
    """A low-level docker client for one node: its TLS settings, no proxy or CA bundle from the environment."""
    api = docker.APIClient(base_url=base_url, tls=tls_config(tls), timeout=timeout_s, version=version,
                           max_pool_size=32)
    api.trust_env = False  # REQUESTS_CA_BUNDLE would silently replace the node's CA
    if tls.get('assert_hostname') is False or isinstance(tls.get('assert_hostname'), str):
        api.mount('https://', _HostnameCheckAdapter(tls['assert_hostname'], pool_maxsize=32))
    return api


def api_get(api, path, **params):
    """GET one engine API path (e.g. '/containers/ID/logs') with the client's version and timeout; the body as
    bytes. Errors are docker's own (NotFound, APIError), as from the SDK's calls.

    Why not the SDK's method: `APIClient.logs()` inspects the container before every read to learn whether it has
    a TTY; the agency's containers never have one. APIClient is a requests.Session, and this uses only that and
    docker's public error conversion.
    """
    response = api.get('{}/v{}{}'.format(api.base_url, api.api_version, path), params=params, timeout=api.timeout)
    try:
        response.raise_for_status()
    except requests.exceptions.HTTPError as e:
        raise docker.errors.create_api_error_from_http_exception(e)
    return response.content


def demultiplex(data):
    """{1: stdout bytes, 2: stderr bytes} of a non-TTY container's log stream (frames of an 8-byte header: stream
    number, 3 zero bytes, big-endian payload size)."""
    streams = {1: [], 2: []}
    offset = 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset + 4:offset + 8], 'big')
        streams.setdefault(data[offset], []).append(data[offset + 8:offset + 8 + size])
        offset += 8 + size
    return {number: b''.join(parts) for number, parts in streams.items()}


def _gpu_requests(gpu_ids):
    if not gpu_ids:
        return None
    return [docker.types.DeviceRequest(driver='nvidia', device_ids=[str(i) for i in gpu_ids], capabilities=[['gpu']])]
