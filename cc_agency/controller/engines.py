"""One adapter per Docker engine: every call the controller makes to a node goes through here, with a timeout.

The adapter speaks the low-level docker API (one HTTP call per operation), hides TLS set-up, classifies errors
(permanent image problems vs. a node that is unreachable, with a reason an operator can act on: refused, timed out,
TLS certificate rejected), and pulls images by the agency's pull policy (`controller.docker.image_pull_policy`):
`if-not-present` pulls a missing image once per node (an image that is there, or was pulled, is not pulled again by
this process, except for the registry check below), `always` pulls before every batch (one pull per image and node
at a time: batches that waited for a pull with the same credentials use it), `never` only uses what is there.
Concurrent batches wait for one pull. `wait()` is the only call without a timeout: it blocks until the container
exits, which is how the controller learns of an exit without polling. Images no batch used for a while are removed
by the pruner (image_pruner.py) through `remove_unused_image`, which never removes one a container uses.

GPUs: a batch gets exactly the device ids placement chose, as an NVIDIA device request (`gpu_access:
device-request`, the default: the engine needs the NVIDIA container toolkit) and as `NVIDIA_VISIBLE_DEVICES`
(what the `nvidia` runtime reads; `gpu_access: environment` passes only that, for engines whose default runtime
is `nvidia`). A node without `hardware.gpus` has its GPUs detected when its monitor connects (`node_gpus`):
nvidia-smi in a short container with the `nvidia` runtime (cc_agency/controller/gpu_detection.py parses it). A batch
without GPUs gets `NVIDIA_VISIBLE_DEVICES=void`, so an image that asks for all GPUs (CUDA
images do) cannot reach devices held by other batches.

Users who do not trust each other share the nodes (issue 12), so:
- An image that came from a registry (it has a repository digest for the repository it is named by) runs for an
  experiment only once the registry accepted that experiment's credentials (or anonymous access) for it: the engine
  pulls it with them (as Kubernetes' `AlwaysPullImages` admission plugin does), and a positive answer is kept per
  (image, credentials) for REGISTRY_ACCESS_TTL_S. An image the operator put on the node without a registry
  (loaded, built, imported) has no repository digest and runs for everyone, as does every image with
  `core_image.disable_pull` (pull policy `never`). So a private image one user pulled is not run for another
  without its credentials. With `always` every batch's own pull is that check.
- Containers drop every capability (a node may add named ones back: `cap_add`), cannot gain privileges, have a
  pids limit (a fork loop stays inside its container), an optional CPU limit, bounded json-file logs, and are
  removed with their anonymous volumes. Their output is read with a byte limit, never whole. Only a batch that
  mounts an input with FUSE, on an agency that allows it, gets more (`confinement`, fuse.py).
"""
import hashlib
import json
import logging
import re
import tarfile
import threading
import time
import uuid

import docker
import docker.errors
import requests
import requests.adapters
import urllib3.exceptions
from docker.utils import parse_repository_tag

from cc_agency.config import (DEFAULT_GPU_DETECTION_IMAGE, NODE_DEFAULTS, PULL_ALWAYS, PULL_IF_NOT_PRESENT,
                              PULL_NEVER)
from cc_agency.controller import gpu_detection
from cc_agency.controller.fair_slots import FairSlots
from cc_agency.controller.fuse import FUSE_CAPABILITIES, FUSE_DEVICE, FUSE_SECURITY_OPT

log = logging.getLogger(__name__)

MIN_API_VERSION = '1.24'  # only for the first call, which asks the engine for its own version
GPU_ACCESS_DEVICE_REQUEST = 'device-request'
GPU_ACCESS_ENVIRONMENT = 'environment'

BATCH_LABEL = 'cc-agency.batch'
ATTEMPT_LABEL = 'cc-agency.attempt'
EXPERIMENT_LABEL = 'cc-agency.experiment'
GPU_DETECTION_LABEL = 'cc-agency.gpu-detection'  # the node's name: its monitor's short nvidia-smi containers
GPU_DETECTION_TIMEOUT_S = 60  # nvidia-smi answers in about a second; one that hangs (a broken driver) is given up


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


def familiar_repository(repository):
    """A repository name as the engine lists it in RepoTags/RepoDigests (Docker Hub's prefixes dropped)."""
    for prefix in ('docker.io/', 'index.docker.io/', 'registry-1.docker.io/'):
        if repository.startswith(prefix):
            repository = repository[len(prefix):]
            break
    return repository[len('library/'):] if repository.startswith('library/') else repository


def _names_image_by_id(url):
    return url.startswith('sha256:') or bool(re.fullmatch(r'[0-9a-f]{12,64}', url))


def needs_registry_check(url, image_attrs):
    """Whether running image `url` (inspected: `image_attrs`) needs the registry's yes for each experiment (pure).

    Yes when it came from (or went to) a registry under the repository it is named by: it then has a repository
    digest for it. An image named by its ID is checked when it has any repository digest.
    """
    digests = image_attrs.get('RepoDigests') or []
    if _names_image_by_id(url):
        return bool(digests)
    repository = familiar_repository(parse_repository_tag(url.split('@')[0])[0])
    return any(familiar_repository(digest.split('@')[0]) == repository for digest in digests)


def credentials_key(auth):
    """What the registry's answer is cached under: a digest of the credentials, never the credentials."""
    return hashlib.sha256(json.dumps(auth or None, sort_keys=True).encode('utf-8')).hexdigest()


def security_warnings(name, node_conf):
    """What an operator should know about a node's configuration before untrusted batches run there (pure)."""
    warnings = []
    base_url = node_conf.get('base_url', '')
    if (base_url.startswith('tcp://') or base_url.startswith('http://')) and not node_conf.get('tls'):
        warnings.append('node {}: the engine at {} is reached over plain TCP without TLS: anyone who reaches that '
                        'port controls the engine and sees the batches\' credentials (see tls)'.format(name, base_url))
    if node_conf.get('network') == 'host':
        warnings.append('node {}: network "host": a batch can reach every service that listens on the loopback '
                        'interface of that host (and its whole network)'.format(name))
    return warnings


_AUTH_MARKERS = ('unauthorized', 'access denied', 'denied', 'authentication required', 'no basic auth credentials',
                 'forbidden')


def _is_refusal(error):
    status = getattr(getattr(error, 'response', None), 'status_code', None)
    return status in (401, 403) or any(marker in str(error).lower() for marker in _AUTH_MARKERS)


def _is_permanent_pull_error(error):
    text = str(error).lower()
    status = getattr(getattr(error, 'response', None), 'status_code', None)
    return status in (401, 403, 404) or any(marker in text for marker in (
        'not found', 'manifest unknown', 'unauthorized', 'access denied', 'authentication required',
        'invalid reference format', 'repository does not exist', 'no basic auth credentials'))


def confinement(cap_add, fuse=False):
    """What a batch container may do, as arguments of docker's create_host_config (pure): every capability
    dropped but the node's `cap_add`, no gaining of privileges; with `fuse` (a batch that mounts an input, on an
    agency that allows it: fuse.py) also the FUSE device, SYS_ADMIN and no AppArmor profile, and privileges may be
    gained (the setuid `fusermount` of a non-root user)."""
    cap_add = list(cap_add)
    if not fuse:
        return {'cap_drop': ['ALL'], 'cap_add': cap_add or None, 'security_opt': ['no-new-privileges'],
                'devices': None}
    named = {cap[len('CAP_'):] if cap.startswith('CAP_') else cap for cap in cap_add}
    return {'cap_drop': ['ALL'], 'cap_add': cap_add + [cap for cap in FUSE_CAPABILITIES if cap not in named],
            'security_opt': list(FUSE_SECURITY_OPT), 'devices': [FUSE_DEVICE]}


# what remove_unused_image did
IMAGE_REMOVED = 'removed'
IMAGE_GONE = 'gone'  # not on the node (any more)
IMAGE_IN_USE = 'in use'  # a container or a scheduled/processing batch uses it
IMAGE_LOCAL = 'local'  # not from a registry: it could not be pulled again, so it is never removed


STARTS_AT_ONCE = 3
REGISTRY_ACCESS_TTL_S = 120  # how long a registry's yes for (image, credentials) is believed without asking again
LOG_FILES = 2  # json-file keeps the newest container_log_mib .. 2 * container_log_mib MiB of a container's output


class Engine:
    """The controller's handle on one node (`controller.docker.nodes.NAME`)."""

    def __init__(self, name, node_conf, api_timeout_s, on_error=None):
        """`on_error(node name)`: called for each call that fails to reach the engine (the metrics' counter)."""
        self.name = name
        self.on_error = on_error or (lambda name: None)
        self.conf = node_conf
        self.api_timeout_s = api_timeout_s
        # what the node's batches get, from its section of the configuration
        self.environment = node_conf.get('environment')
        self.network = node_conf.get('network')
        self.gpus = node_conf.get('hardware', {}).get('gpus', [])
        self.gpu_access = node_conf.get('hardware', {}).get('gpu_access', GPU_ACCESS_DEVICE_REQUEST)
        self.cap_add = list(node_conf.get('cap_add', NODE_DEFAULTS['cap_add']))
        self.pids_limit = node_conf.get('pids_limit', NODE_DEFAULTS['pids_limit'])
        self.cpus = node_conf.get('cpus')
        self.log_mib = node_conf.get('container_log_mib', NODE_DEFAULTS['container_log_mib'])
        for warning in security_warnings(name, node_conf) + gpu_warnings(name, node_conf):
            log.warning('%s', warning)
        self._api = None
        self._lock = threading.Lock()
        self._images_present = {}  # url -> whether running it needs the registry's yes per experiment
        self._access_granted = {}  # (url, credentials_key) -> monotonic time of the registry's last yes
        self._image_locks = {}
        self._shared_pulls = {}  # (url, credentials_key) -> (monotonic end, ImageError or None) of the last pull
        # containers being created/started at once: more only queue up inside dockerd and make its calls time out
        self.start_slots = FairSlots(STARTS_AT_ONCE)

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
                    self.on_error(self.name)
                    raise EngineError('node {}: cannot connect: {}'.format(
                        self.name, describe_connection_error(e, base_url, self.api_timeout_s)))
                self._api = api
            return self._api

    def reset(self):
        """Forget the connection (after the engine went away); the next call reconnects."""
        with self._lock:
            api, self._api = self._api, None
            self._images_present.clear()
            self._shared_pulls.clear()
        if api is not None:
            api.close()

    def _call(self, what, function, *args, **kwargs):
        try:
            return function(self._client(), *args, **kwargs)
        except docker.errors.APIError:
            raise
        except (requests.RequestException, docker.errors.DockerException, OSError) as e:
            self.on_error(self.name)
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
    def _image_lock(self, url):
        with self._lock:
            return self._image_locks.setdefault(url, threading.Lock())

    def ensure_image(self, url, auth=None, pull_policy=PULL_IF_NOT_PRESENT):
        """Make sure `url` is on this node and may run with these credentials (`auth`, usable: prefixes stripped).

        `if-not-present`: present and local: used as it is. From a registry: pulled with `auth` unless the registry
        said yes to these credentials within REGISTRY_ACCESS_TTL_S. Not present: pulled. `never`: used when present.
        `always`: see _pull_always. One pull per image and node at a time. Returns True when the image was not on
        the node before.
        """
        if pull_policy == PULL_ALWAYS:
            return self._pull_always(url, auth)
        disable_pull = pull_policy == PULL_NEVER
        key = (url, credentials_key(auth))
        if self._may_run(url, key):
            return False
        with self._image_lock(url):
            if self._may_run(url, key):
                return False
            attrs = self._inspect_image(url)
            if attrs is not None and (disable_pull or not needs_registry_check(url, attrs)):
                self._images_present[url] = False
                return False
            if attrs is None and disable_pull:
                raise ImageError('image {} is not on node {} and pulling is disabled'.format(url, self.name), True)
            if attrs is not None and _names_image_by_id(url):
                raise ImageError('image {} is named by its ID but came from a registry: name it by repository and tag '
                                 '(the registry is asked whether this experiment may use it)'.format(url), True)
            self._pull(url, auth, present=attrs is not None)
            self._images_present[url] = True
            self._access_granted[key] = time.monotonic()
            return attrs is None

    def _inspect_image(self, url):
        try:
            return self._call('inspect image', lambda api: api.inspect_image(url))
        except docker.errors.NotFound:
            return None
        except docker.errors.APIError as e:
            raise ImageError('image {} cannot be inspected on node {}: {}'.format(url, self.name, e.explanation), False)

    def _pull_always(self, url, auth):
        """`always`: the image as the registry has it now, pulled with these credentials (which is also the
        registry's answer for them). A batch that waited while a pull with the same credentials ran uses that
        pull's outcome (concurrent batches share one pull); one that finds none in flight pulls. An image the
        operator put on the node without a registry (no repository digest for its name) is used as it is: there is
        nothing to pull it from."""
        asked_at = time.monotonic()
        key = (url, credentials_key(auth))
        with self._image_lock(url):
            shared = self._shared_pulls.get(key)
            if shared is not None and shared[0] >= asked_at:
                if shared[1] is not None:
                    raise shared[1]
                return False
            attrs = self._inspect_image(url)
            if attrs is not None and not needs_registry_check(url, attrs):
                self._images_present[url] = False
                return False
            if attrs is not None and _names_image_by_id(url):
                raise ImageError('image {} is named by its ID but came from a registry: name it by repository and tag '
                                 '(the registry is asked whether this experiment may use it)'.format(url), True)
            try:
                self._pull(url, auth, present=attrs is not None)
            except ImageError as e:
                self._shared_pulls[key] = (time.monotonic(), e)
                raise
            self._shared_pulls[key] = (time.monotonic(), None)
            self._images_present[url] = True
            self._access_granted[key] = time.monotonic()
            return attrs is None

    def _forget_image(self, url):
        """Forget what this process knows of `url` on the node, so that its next batch looks (and pulls) again."""
        with self._lock:
            self._images_present.pop(url, None)
            for cache in (self._access_granted, self._shared_pulls):
                for key in [key for key in cache if key[0] == url]:
                    cache.pop(key, None)

    def remove_unused_image(self, url, still_unused):
        """Remove image `url` from the node, unless a container (of any state) uses it, it came from no registry
        (it could not be pulled again) or `still_unused()` says no. `still_unused` is asked once a batch of this
        image can no longer start without waiting for this removal: a batch that is scheduled (so counted by it)
        before then is seen, one scheduled after waits and pulls the image again. Returns IMAGE_*."""
        with self._image_lock(url):
            self._forget_image(url)
            if not still_unused():
                return IMAGE_IN_USE
            attrs = self._inspect_image(url)
            if attrs is None:
                return IMAGE_GONE
            if not needs_registry_check(url, attrs):
                return IMAGE_LOCAL
            containers = self._call('list', lambda api: api.containers(all=True))
            if any(c.get('ImageID') == attrs['Id'] or c.get('Image') in (url, attrs['Id']) for c in containers):
                return IMAGE_IN_USE
            try:
                self._call('remove image', lambda api: api.remove_image(url))
            except docker.errors.NotFound:
                return IMAGE_GONE
            except docker.errors.APIError as e:
                if e.status_code == 409:  # a container was created meanwhile (not by this agency)
                    return IMAGE_IN_USE
                raise
            log.info('node %s: removed image %s, which no batch used for the prune duration', self.name, url)
            return IMAGE_REMOVED

    def _may_run(self, url, key):
        needs_check = self._images_present.get(url)
        if needs_check is None:
            return False
        granted_at = self._access_granted.get(key)
        return not needs_check or (granted_at is not None and time.monotonic() - granted_at < REGISTRY_ACCESS_TTL_S)

    def _pull(self, url, auth, present):
        repository, tag = image_reference(url)
        try:
            self._call('pull', lambda api: api.pull(repository, tag=tag, auth_config=auth or None))
        except docker.errors.APIError as e:
            explanation = e.explanation or str(e)
            refused = _is_refusal(e)
            if present:  # the registry's answer for this experiment (the image stays on the node)
                if refused or _is_permanent_pull_error(e):
                    raise ImageError('registry refused access to {} for this experiment (node {}: {})'.format(
                        url, self.name, explanation), True)
                raise ImageError('the registry of image {} could not be asked whether this experiment may use it '
                                 '(node {}: {})'.format(url, self.name, explanation), False)
            reason = 'image {} could not be pulled on node {}: {}'.format(url, self.name, explanation)
            if refused:
                reason = 'image {} could not be pulled on node {}: registry refused access to {} for this experiment ' \
                         '({})'.format(url, self.name, url, explanation)
            raise ImageError(reason, _is_permanent_pull_error(e))
        if present:
            log.info('node %s: the registry allows image %s for an experiment', self.name, url)
        else:
            log.info('node %s: pulled image %s', self.name, url)

    # --- containers -------------------------------------------------------------------------------------------
    def create_container(self, name, image, entrypoint, labels, ram_mib, environment=None, network=None,
                         gpu_ids=(), user=None, fuse=False, cpu_shares=None):
        """`fuse`: the batch mounts an input with FUSE and the agency allows it (see `confinement`); `cpu_shares`:
        the container's CPU weight (fairshare.cpu_shares), Docker's default when None."""
        def create(api):
            host_config = api.create_host_config(
                mem_limit='{}m'.format(ram_mib), memswap_limit='{}m'.format(ram_mib), network_mode=network,
                device_requests=_gpu_requests(gpu_ids) if self.gpu_access == GPU_ACCESS_DEVICE_REQUEST else None,
                **confinement(self.cap_add, fuse), pids_limit=self.pids_limit, nano_cpus=int(self.cpus * 1e9) if self.cpus else None,
                cpu_shares=cpu_shares,
                log_config=docker.types.LogConfig(type='json-file', config={
                    'max-size': '{}m'.format(self.log_mib), 'max-file': str(LOG_FILES)}))
            env = dict(environment or {})
            env['NVIDIA_VISIBLE_DEVICES'] = ','.join(str(i) for i in gpu_ids) if gpu_ids else 'void'
            return api.create_container(image, entrypoint=entrypoint, command=[], name=name, labels=labels,
                                        environment=env, host_config=host_config, user=user)['Id']
        try:
            return self._call('create container', create)
        except docker.errors.ImageNotFound:
            # removed from the node behind our back: the next attempt pulls it again
            self._images_present.pop(image, None)
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

    def log_tail(self, container_id, stream, max_bytes):
        """The last `max_bytes` of what the container wrote on `stream` ('stdout' or 'stderr') and whether more was
        written: read as a stream, so a container that printed gigabytes costs the controller `max_bytes` of memory.
        (One call: unlike the SDK's `logs()`, no inspect first to learn whether it has a TTY; the agency's containers
        never have one.)"""
        return self._call('logs', lambda api: read_log_tail(api, container_id, stream, max_bytes))

    def file_head(self, container_id, path, max_bytes):
        """(the first `max_bytes` of the regular file `path` in a container, exited or not; the file's size in
        bytes), or (b'', None) when there is no such file (a link or a directory there is not followed): read from the
        engine's tar stream (get_archive) piece by piece, which stops the transfer at `max_bytes`, so a file of
        gigabytes costs the controller `max_bytes` of memory."""
        return self._call('get archive', lambda api: read_file_head(api, container_id, path, max_bytes))

    def remove(self, container_id):
        """Remove a container (killing it if it runs); a container that is already gone is fine."""
        try:
            # v: its anonymous volumes too (an image's VOLUMEs), so nothing of the batch stays on the node
            self._call('remove', lambda api: api.remove_container(container_id, force=True, v=True))
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

    # --- node hardware: GPUs ----------------------------------------------------------------------------------
    def node_gpus(self):
        """The GPUs batches may use on this node, asked when its monitor connects: `hardware.gpus` when listed (also
        `[]`), else those nvidia-smi finds in a container on the node less `hardware.gpu_blacklist`; `[]` when
        detection is not possible there (one log line says why). Raises EngineError when the engine cannot be
        reached (the node is then offline)."""
        hardware = self.conf.get('hardware') or {}
        if 'gpus' in hardware:
            self.gpus = hardware['gpus']
            return self.gpus
        runtimes = self._call('info', lambda api: api.info()).get('Runtimes') or {}
        if gpu_detection.NVIDIA_RUNTIME not in runtimes:
            log.info('node %s: no GPUs detected: its engine has no "%s" runtime (install the NVIDIA container toolkit '
                     'and run `nvidia-ctk runtime configure`, or list the GPUs in hardware.gpus)', self.name,
                     gpu_detection.NVIDIA_RUNTIME)
            self.gpus = []
            return self.gpus
        image = hardware.get('gpu_detection_image', DEFAULT_GPU_DETECTION_IMAGE)
        try:
            found = gpu_detection.parse_nvidia_smi(self._run_gpu_detection(image))
        except Exception as e:  # whatever goes wrong, the node works without GPUs (and says why)
            known = (GpuDetectionError, gpu_detection.GpuOutputError, EngineError, docker.errors.APIError)
            log.warning('node %s: no GPUs detected: nvidia-smi in image %s: %s', self.name, image,
                        (getattr(e, 'explanation', None) or e) if isinstance(e, known) else type(e).__name__)
            self.gpus = []
            return self.gpus
        self.gpus = gpu_detection.without_blacklisted(found, hardware.get('gpu_blacklist'))
        log.info('node %s: detected %d GPU(s)%s: %s', self.name, len(found),
                 ', {} blacklisted'.format(len(found) - len(self.gpus)) if len(found) != len(self.gpus) else '',
                 ', '.join('{} ({}, {} MiB)'.format(gpu['id'], gpu.get('name', '?'), gpu['vram']) for gpu in found)
                 or 'none')
        return self.gpus

    def _run_gpu_detection(self, image):
        """What nvidia-smi printed in a short container of `image` (pulled when missing) with the nvidia runtime,
        every GPU visible, no network and no capabilities; the container is removed whatever happens."""
        self._remove_gpu_detection_containers()  # a controller that died during a detection left its container
        try:
            self._call('inspect image', lambda api: api.inspect_image(image))
        except docker.errors.NotFound:
            repository, tag = image_reference(image)
            self._call('pull', lambda api: api.pull(repository, tag=tag))
            log.info('node %s: pulled image %s for GPU detection', self.name, image)

        def create(api):
            host_config = api.create_host_config(
                runtime=gpu_detection.NVIDIA_RUNTIME, network_mode='none', mem_limit='256m', memswap_limit='256m',
                security_opt=['no-new-privileges'], cap_drop=['ALL'], pids_limit=64)
            # the entrypoint is nvidia-smi itself: CUDA images' own entrypoint prints a banner on stdout
            return api.create_container(
                image, entrypoint=gpu_detection.DETECTION_COMMAND[:1], command=gpu_detection.DETECTION_COMMAND[1:],
                name='cc-agency-gpu-detection-{}'.format(uuid.uuid4().hex[:12]),
                labels={GPU_DETECTION_LABEL: self.name}, host_config=host_config,
                environment={'NVIDIA_VISIBLE_DEVICES': 'all', 'NVIDIA_DRIVER_CAPABILITIES': 'utility'})['Id']
        container_id = self._call('create container', create)
        try:
            self._call('start', lambda api: api.start(container_id))
            exit_code = self._call('wait', lambda api: api.wait(container_id, timeout=GPU_DETECTION_TIMEOUT_S))
            exit_code = exit_code.get('StatusCode')
            stdout, _ = self._call('logs', lambda api: read_log_tail(api, container_id, 'stdout',
                                                                    gpu_detection.MAX_OUTPUT_BYTES))
            if exit_code != 0:
                stderr, _ = self._call('logs', lambda api: read_log_tail(api, container_id, 'stderr', 500))
                raise GpuDetectionError('exited with code {}: {}'.format(
                    exit_code, stderr.decode('utf-8', 'replace').strip() or stdout.decode('utf-8', 'replace')[-500:]))
            return stdout.decode('utf-8', 'replace')
        finally:
            try:
                self.remove(container_id)
            except (EngineError, docker.errors.APIError) as e:
                log.warning('node %s: GPU detection container not removed (%s); removed at the next detection',
                            self.name, e)

    def _remove_gpu_detection_containers(self):
        for container in self._call('list', lambda api: api.containers(all=True, filters={
                'label': '{}={}'.format(GPU_DETECTION_LABEL, self.name)})):
            self.remove(container['Id'])


class GpuDetectionError(Exception):
    """nvidia-smi did not run to its end in the detection container."""


def gpu_warnings(name, node_conf):
    """Settings of a node's GPUs that do not do what they seem to (pure)."""
    hardware = node_conf.get('hardware') or {}
    if 'gpus' in hardware and hardware.get('gpu_blacklist'):
        return ['node {}: hardware.gpu_blacklist has no effect: hardware.gpus lists the GPUs (detection, which the '
                'blacklist applies to, is off); leave the blacklisted GPUs out of hardware.gpus'.format(name)]
    return []


def api_client(base_url, tls, timeout_s, version):
    """A low-level docker client for one node: its TLS settings, no proxy or CA bundle from the environment."""
    api = docker.APIClient(base_url=base_url, tls=tls_config(tls), timeout=timeout_s, version=version,
                           max_pool_size=32)
    api.trust_env = False  # REQUESTS_CA_BUNDLE would silently replace the node's CA
    if tls.get('assert_hostname') is False or isinstance(tls.get('assert_hostname'), str):
        api.mount('https://', _HostnameCheckAdapter(tls['assert_hostname'], pool_maxsize=32))
    return api


def _read_exactly(raw, size):
    data = b''
    while len(data) < size:
        piece = raw.read(size - len(data))
        if not piece:
            break
        data += piece
    return data


def read_log_tail(api, container_id, stream, max_bytes):
    """One stream ('stdout' or 'stderr') of a non-TTY container's log, read as it arrives: see frames_tail.

    Why not the SDK's method: `APIClient.logs()` inspects the container before every read to learn whether it has
    a TTY, and reads the whole log into memory. APIClient is a requests.Session; this uses only that and docker's
    public error conversion.
    """
    number = {'stdout': 1, 'stderr': 2}[stream]
    response = api.get('{}/v{}/containers/{}/logs'.format(api.base_url, api.api_version, container_id),
                       params={'stdout': int(number == 1), 'stderr': int(number == 2)}, stream=True,
                       timeout=api.timeout)
    try:
        try:
            response.raise_for_status()
        except requests.exceptions.HTTPError as e:
            raise docker.errors.create_api_error_from_http_exception(e)
        try:
            return frames_tail(response.raw, number, max_bytes)
        except urllib3.exceptions.HTTPError as e:  # the engine went away while the log streamed
            raise requests.exceptions.ConnectionError(e)
    finally:
        response.close()


def read_file_head(api, container_id, path, max_bytes, chunk_bytes=65536):
    """Engine.file_head on a low-level client (a requests.Session, as read_log_tail: the SDK's get_archive leaves
    the response open when its reader stops early)."""
    response = api.get('{}/v{}/containers/{}/archive'.format(api.base_url, api.api_version, container_id),
                       params={'path': path}, stream=True, timeout=api.timeout)
    try:
        if response.status_code == 404:  # the container's logs were read just before: it is the file that is missing
            return b'', None
        try:
            response.raise_for_status()
        except requests.exceptions.HTTPError as e:
            raise docker.errors.create_api_error_from_http_exception(e)
        response.raw.decode_content = True  # the engine gzips the archive when asked (requests asks)
        try:
            with tarfile.open(fileobj=response.raw, mode='r|') as archive:
                member = archive.next()
                if member is None or not member.isfile():
                    return b'', None
                readable = archive.extractfile(member)
                data = bytearray()
                while len(data) < max_bytes:
                    piece = readable.read(min(chunk_bytes, max_bytes - len(data)))
                    if not piece:
                        break
                    data += piece
                return bytes(data), member.size
        except urllib3.exceptions.HTTPError as e:  # the engine went away while the archive streamed
            raise requests.exceptions.ConnectionError(e)
        except tarfile.TarError as e:
            raise docker.errors.DockerException('the archive of {} is not a tar stream ({})'.format(path, e))
    finally:
        response.close()


def frames_tail(readable, number, max_bytes, chunk_bytes=65536):
    """(the last `max_bytes` of stream `number` in a multiplexed log, whether more was written), from a file-like
    `readable`; memory stays below 2 * max_bytes + chunk_bytes whatever the log holds. Frames: an 8-byte header
    (stream number, 3 zero bytes, big-endian payload size), then the payload."""
    kept, cut = bytearray(), False
    while True:
        header = _read_exactly(readable, 8)
        if len(header) < 8:
            break
        remaining = int.from_bytes(header[4:8], 'big')
        while remaining:
            piece = readable.read(min(remaining, chunk_bytes))
            if not piece:
                break
            remaining -= len(piece)
            if header[0] == number:
                kept += piece
                if len(kept) > 2 * max_bytes:
                    del kept[:len(kept) - max_bytes]
                    cut = True
    if len(kept) > max_bytes:
        del kept[:len(kept) - max_bytes]
        cut = True
    return bytes(kept), cut


def _gpu_requests(gpu_ids):
    if not gpu_ids:
        return None
    return [docker.types.DeviceRequest(driver='nvidia', device_ids=[str(i) for i in gpu_ids], capabilities=[['gpu']])]
