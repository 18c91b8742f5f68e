"""Load and check the operator's configuration file (the seed's `cc-agency.yml` format, or cc-agency 9.x's).

Every key of the seed keeps its meaning; new keys are optional. A cc-agency 9.x file loads as it is, so that an
installation moves over without rewriting it: its wake-up socket (`controller.bind_socket_path`) is used, its other
keys are type-checked, and those without an effect here are logged once (NO_EFFECT_KEYS). A wrong file is reported
as one line that names the key path and the problem (`ConfigError`), never echoing a secret, so the CLI and the
daemons can fail at start-up clearly. The wake-up socket's addresses are defined here once, for the broker and the
controller (wake_connect_url, wake_bind_url).
"""
import logging
import os

import jsonschema
import yaml

DEFAULT_CONFIG_PATH = os.path.join('~', '.config', 'cc-agency.yml')
CONFIG_ENV_VAR = 'CC_AGENCY_CONF'
SECRET_KEYS = frozenset(['password', 'secret_key', 'secret'])  # their values never appear in a message

log = logging.getLogger(__name__)

MAX_OUTPUT_BYTES_LIMIT = 256 * 1024 * 1024  # the most controller.max_output_bytes may be: a stream is masked in memory
DEFAULT_GPU_DETECTION_IMAGE = 'nvidia/cuda:12.4.1-base-ubuntu22.04'  # has nvidia-smi with the nvidia runtime

_SECONDS = {'type': 'number', 'exclusiveMinimum': 0}
_POSITIVE = {'type': 'number', 'exclusiveMinimum': 0}
_COUNT = {'type': 'integer', 'minimum': 1}
_STRING = {'type': 'string', 'minLength': 1}

# --- broker authentication and cross-site keys (cc-agency 9.3 names; see docs/operator-guide.md) ------------------
# `broker.auth.jwt` is cc-agency 9.3's section for the tokens of POST /login and POST /refreshtoken: the expiries are
# used as they are; `secret_key` is accepted so that a 9.3 file loads, but tokens here are random and stored hashed,
# so nothing is signed with it. `broker.cors_origins`: the exact origins of a web UI served elsewhere.
_JWT_SCHEMA = {
    'type': 'object',
    'properties': {
        'secret_key': {'type': 'string'},
        'access_token_expires': _SECONDS,
        'refresh_token_expires': _SECONDS,
    },
    'additionalProperties': False,
}
_CORS_ORIGINS_SCHEMA = {
    'type': 'array',
    # scheme://host[:port], nothing after it: an origin is compared as a whole, never as a pattern
    'items': {'type': 'string', 'pattern': r'^https?://[^/?#\s*]+$'},
    'uniqueItems': True,
}
# ---------------------------------------------------------------------------------------------------------------

_AUTH_SCHEMA = {
    'type': 'object',
    'properties': {'username': _STRING, 'password': {'type': 'string'}},
    'required': ['username', 'password'],
    'additionalProperties': False,
}

# --- cc-agency 9.x keys (docs/operator-guide.md, "Moving from cc-agency 9.x") -----------------------------------
# A 9.x file loads as it is. `controller.bind_socket_path` is the controller's wake-up socket (ZeroMQ over a unix
# socket, `ipc://`) instead of the seed's external_url/bind_host/bind_port. The other 9.x keys are checked for their
# types; those this agency does not act on are listed in NO_EFFECT_KEYS and logged once at load.
UNIX_SOCKET_PATH_MAX_BYTES = 107  # sun_path of a unix socket address, less its terminating NUL

_GPU_BLACKLIST_SCHEMA = {'type': 'array', 'items': {'type': 'integer', 'minimum': 0}, 'uniqueItems': True}
_TRUSTEE_SCHEMA = {
    'type': 'object',
    'properties': {'internal_url': _STRING, 'username': _STRING, 'password': {'type': 'string'}},
    'required': ['internal_url', 'username', 'password'],
    'additionalProperties': False,
}
# cc-agency 9.x's key, plus `secret` (the HMAC key of X-CC-Agency-Signature); cc_agency/controller/notifier.py
_NOTIFICATION_HOOKS_SCHEMA = {
    'type': 'array',
    'items': {
        'type': 'object',
        'properties': {
            'url': {'type': 'string', 'pattern': r'^https?://[^/?#\s]+'},
            'secret': {'type': 'string', 'minLength': 1},
            'auth': {
                'type': 'object',
                'properties': {'username': {'type': 'string'}, 'password': {'type': 'string'}},
                'required': ['username', 'password'],
                'additionalProperties': False,
            },
        },
        'required': ['url'],
        'additionalProperties': False,
    },
}
_CLOUD_SCHEMA = {
    'type': 'object',
    'properties': {
        'enable': {'type': 'boolean'},
        'internal_url': _STRING,
        'sshPort': {'type': 'integer', 'minimum': 1, 'maximum': 65535},
        'disableStrictHostKeyChecking': {'type': 'boolean'},
        'publicsshKey': {'type': 'string'},
        'username': _STRING,
        'password': {'type': 'string'},
        'upload_directory_name': _STRING,
        'userhome_directory': _STRING,
        'filesystem_directory': _STRING,
        'user_storage_limit': {'type': 'integer', 'minimum': 0},
    },
    'required': ['enable', 'internal_url', 'username', 'password'],
    'additionalProperties': False,
}
# ---------------------------------------------------------------------------------------------------------------

# --- images: when they are pulled, when they are removed (cc_agency/controller/engines.py, image_pruner.py) ------
PULL_ALWAYS = 'always'  # before every batch, with the batch's credentials
PULL_IF_NOT_PRESENT = 'if-not-present'  # missing images, and registry images for each experiment's credentials
PULL_NEVER = 'never'  # images must be on the nodes (the seed's core_image.disable_pull: True)
IMAGE_PULL_POLICIES = (PULL_ALWAYS, PULL_IF_NOT_PRESENT, PULL_NEVER)
# ---------------------------------------------------------------------------------------------------------------

_NODE_SCHEMA = {
    'type': 'object',
    'properties': {
        'base_url': {'type': 'string', 'pattern': '^(unix|tcp|http|https|ssh)://'},
        'tls': {
            'type': 'object',
            'properties': {
                'verify': {'type': ['string', 'boolean']},
                'client_cert': {'type': 'array', 'items': _STRING, 'minItems': 2, 'maxItems': 2},
                'assert_hostname': {'type': ['boolean', 'string']},
            },
            'additionalProperties': False,
        },
        'environment': {'type': 'object', 'additionalProperties': {'type': ['string', 'number', 'boolean']}},
        'network': _STRING,
        # what a batch container may do and use on this node (issue 12); defaults in NODE_DEFAULTS
        'cap_add': {'type': 'array', 'items': {'type': 'string', 'pattern': '^(CAP_)?[A-Z_]+$'}, 'uniqueItems': True},
        'pids_limit': {'type': 'integer', 'minimum': 16},
        'cpus': {'type': 'number', 'exclusiveMinimum': 0},
        'container_log_mib': {'type': 'integer', 'minimum': 1},
        'hardware': {
            'type': 'object',
            'properties': {
                'gpus': {
                    'type': 'array',
                    'items': {
                        'type': 'object',
                        'properties': {'id': {'type': ['integer', 'string']}, 'vram': {'type': 'integer', 'minimum': 0}},
                        'required': ['id', 'vram'],
                        'additionalProperties': False,
                    },
                },
                # how a container gets its GPUs: an NVIDIA device request (the engine needs the NVIDIA container
                # toolkit), or only NVIDIA_VISIBLE_DEVICES (engines whose default runtime is `nvidia`)
                'gpu_access': {'enum': ['device-request', 'environment']},
                # without `gpus`: detected when the node connects (cc_agency/controller/gpu_detection.py), less
                # the blacklisted indices (cc-agency 9.x), by nvidia-smi in this image with the `nvidia` runtime
                'gpu_blacklist': _GPU_BLACKLIST_SCHEMA,
                'gpu_detection_image': _STRING,
            },
            'additionalProperties': False,
        },
    },
    'required': ['base_url'],
    'additionalProperties': False,
}

CONFIG_SCHEMA = {
    'type': 'object',
    'properties': {
        'broker': {
            'type': 'object',
            'properties': {
                'external_url': _STRING,
                'auth': {
                    'type': 'object',
                    'properties': {
                        'num_login_attempts': _COUNT,
                        'block_for_seconds': _SECONDS,
                        'tokens_valid_for_seconds': _SECONDS,
                        'bcrypt_rounds': {'type': 'integer', 'minimum': 4, 'maximum': 31},
                        'jwt': _JWT_SCHEMA,
                    },
                    'required': ['num_login_attempts', 'block_for_seconds', 'tokens_valid_for_seconds'],
                    'additionalProperties': False,
                },
                'cors_origins': _CORS_ORIGINS_SCHEMA,
            },
            'required': ['auth'],  # external_url: the seed's files have it, cc-agency 9.x files do not
            'additionalProperties': False,
        },
        'controller': {
            'type': 'object',
            'properties': {
                'external_url': {'type': 'string', 'pattern': '^tcp://'},
                'bind_host': _STRING,
                'bind_port': {'type': 'integer', 'minimum': 1, 'maximum': 65535},
                'bind_socket_path': _STRING,  # cc-agency 9.x, instead of the three above (check_wake_keys)
                'notification_hooks': _NOTIFICATION_HOOKS_SCHEMA,  # cc-agency 9.x
                # the first wait before a failed notification is posted again (doubled per try)
                'notification_retry_base_seconds': _SECONDS,
                # Prometheus text at http://bind_host:bind_port/metrics (cc_agency/controller/metrics.py); off without
                'metrics': {
                    'type': 'object',
                    'properties': {'bind_host': _STRING,
                                   'bind_port': {'type': 'integer', 'minimum': 1, 'maximum': 65535}},
                    'required': ['bind_host', 'bind_port'],
                    'additionalProperties': False,
                },
                # the most of a command's stdout and of its stderr kept (in GridFS) per batch
                'max_output_bytes': {'type': 'integer', 'minimum': 1024, 'maximum': MAX_OUTPUT_BYTES_LIMIT},
                'docker': {
                    'type': 'object',
                    'properties': {
                        'core_image': {
                            'type': 'object',
                            'properties': {
                                'url': _STRING,
                                'auth': _AUTH_SCHEMA,
                                'disable_pull': {'type': 'boolean'},
                            },
                            'required': ['url'],
                            'additionalProperties': False,
                        },
                        'nodes': {'type': 'object', 'additionalProperties': _NODE_SCHEMA},
                        'api_timeout_seconds': _SECONDS,
                        'container_user': {'type': ['string', 'integer']},
                        # cc-agency 9.x: batches whose RED mounts an input (mount: true) get FUSE (fuse.py)
                        'allow_insecure_capabilities': {'type': 'boolean'},
                        # when the engine pulls a batch's image (image_pull_policy below)
                        'image_pull_policy': {'enum': list(IMAGE_PULL_POLICIES)},
                        # cc-agency 9.x, seconds: images no batch used for that long leave the nodes (0: never)
                        'image_prune_duration': {'type': 'number', 'minimum': 0},
                        'image_prune_interval_seconds': _SECONDS,  # how often the pruner looks
                    },
                    'required': ['nodes'],
                    'additionalProperties': False,
                },
                'scheduling': {
                    'type': 'object',
                    'properties': {
                        'strategy': {'enum': ['spread', 'binpack']},
                        'attempts_to_fail': _COUNT,
                        'pass_interval_seconds': _SECONDS,
                        # an experiment without batchConcurrencyLimit runs at most this many batches at once
                        'batch_concurrency_limit': {'type': 'integer', 'minimum': 1, 'maximum': 1000000},
                        # which user's batch is placed next (cc_agency/controller/fairshare.py POLICIES)
                        'policy': {'enum': ['fair', 'fifo']},
                        'user_weights': {'type': 'object', 'additionalProperties': _POSITIVE},
                        # wall-clock limits of batch runs (cc_agency/timelimits.py)
                        'default_time_limit_seconds': _COUNT,
                        'max_time_limit_seconds': _COUNT,
                    },
                    'additionalProperties': False,
                },
            },
            # the wake-up socket: external_url, bind_host, bind_port (seed) or bind_socket_path (9.x), check_wake_keys;
            # scheduling: 9.x files have none, its keys have defaults
            'required': ['docker'],
            'additionalProperties': False,
        },
        'trustee': _TRUSTEE_SCHEMA,  # cc-agency 9.x
        'cloud': _CLOUD_SCHEMA,  # cc-agency 9.x
        'mongo': {
            'type': 'object',
            'properties': {
                'host': _STRING,
                'port': {'type': 'integer', 'minimum': 1, 'maximum': 65535},
                'db': _STRING,
                'username': _STRING,
                'password': {'type': 'string'},
                'auth_source': _STRING,
            },
            'required': ['db'],
            'dependentRequired': {'username': ['password'], 'password': ['username']},
            'additionalProperties': False,
        },
    },
    'required': ['broker', 'controller', 'mongo'],
    'additionalProperties': False,
}

DEFAULTS = {
    'mongo.host': 'localhost',
    'mongo.port': 27017,
    'broker.auth.bcrypt_rounds': 12,
    'controller.docker.api_timeout_seconds': 10,
    'controller.docker.container_user': '1000:1000',
    'controller.docker.allow_insecure_capabilities': False,
    'controller.docker.image_prune_duration': 0,  # never
    'controller.docker.image_prune_interval_seconds': 60,
    'controller.scheduling.pass_interval_seconds': 2,
    'controller.notification_retry_base_seconds': 10,
    'controller.max_output_bytes': 16 * 1024 * 1024,  # cc-agency 9.x kept stdout/stderr whole in GridFS
    # the seed's example values; a cc-agency 9.x file has no scheduling section
    'controller.scheduling.strategy': 'spread',
    'controller.scheduling.attempts_to_fail': 3,
    'controller.scheduling.batch_concurrency_limit': 64,  # cc-agency 9.x's default batchConcurrencyLimit
    'controller.scheduling.policy': 'fair',
}

# cc-agency 9.x keys that load but change nothing here: (key path, when it is worth a warning, why). One warning
# line each at load, so that an operator moving from 9.x sees what does not carry over.
NO_EFFECT_KEYS = (
    ('trustee', lambda value: True,
     'no trustee service is used: secrets stay in MongoDB until their batch or experiment ends, then are voided'),
    ('cloud', lambda value: True, 'cc-cloud is not supported by this agency'),
)

# per node (controller.docker.nodes.NAME): batch containers drop every capability and get these back; at most
# pids_limit processes and threads (a fork loop stays inside its container); json-file logs of at most
# container_log_mib MiB per file (two files); cpus: no CPU limit unless set
NODE_DEFAULTS = {
    'cap_add': [],
    'pids_limit': 1024,
    'container_log_mib': 16,
}


class ConfigError(Exception):
    """The configuration file is missing, unreadable or wrong; the message is one line naming the key."""


def config_path(path=None):
    """The file to read: an explicit path, else $CC_AGENCY_CONF, else the seed's default path."""
    return os.path.expanduser(path or os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_PATH)


def _problem(error):
    """What is wrong with one value, without echoing it when it is a secret (messages end up in logs)."""
    if error.absolute_path and str(error.absolute_path[-1]) in SECRET_KEYS:
        if error.validator == 'type':
            return 'must be of type {}'.format(error.validator_value)
        return 'has an invalid value'
    return error.message


def _key_path(error):
    parts = [str(p) for p in error.absolute_path]
    if error.validator == 'required':
        missing = error.message.split("'")[1]
        parts.append(missing)
        return '.'.join(parts), 'is required'
    if error.validator == 'additionalProperties':
        return '.'.join(parts) or '<top level>', 'unknown key ({})'.format(error.message.split('(')[-1].rstrip(')'))
    if error.validator == 'dependentRequired':
        return '.'.join(parts), error.message
    return '.'.join(parts) or '<top level>', _problem(error)


def check_config(conf):
    """Validate a parsed configuration; raise ConfigError naming the first wrong key path."""
    validator = jsonschema.Draft202012Validator(CONFIG_SCHEMA)
    errors = sorted(validator.iter_errors(conf), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        path, problem = _key_path(errors[0])
        raise ConfigError('config key {}: {}'.format(path, problem))
    check_wake_keys(conf['controller'])
    image_pull_policy(conf['controller']['docker'])
    if conf.get('cloud', {}).get('enable'):
        raise ConfigError('config key cloud.enable: cc-cloud is not supported by this agency; set it to false or '
                          'remove the cloud section')


# --- the controller's wake-up socket: one definition for the broker (connect) and the controller (bind) -----------
_SEED_WAKE_KEYS = ('external_url', 'bind_host', 'bind_port')


def check_wake_keys(controller_conf):
    """Exactly one way of naming the wake-up socket: the seed's three keys, or 9.x's bind_socket_path."""
    given = [key for key in _SEED_WAKE_KEYS if key in controller_conf]
    if 'bind_socket_path' in controller_conf:
        if given:
            raise ConfigError('config key controller.{}: give either controller.bind_socket_path (a unix socket) or '
                              'external_url, bind_host and bind_port (TCP), not both'.format(given[0]))
        path = os.path.expanduser(controller_conf['bind_socket_path'])
        if len(path.encode()) > UNIX_SOCKET_PATH_MAX_BYTES:
            raise ConfigError('config key controller.bind_socket_path: longer than {} bytes once ~ is expanded (a '
                              'unix socket path limit)'.format(UNIX_SOCKET_PATH_MAX_BYTES))
        return
    for key in _SEED_WAKE_KEYS:
        if key not in controller_conf:
            raise ConfigError('config key controller.{}: is required (or controller.bind_socket_path '
                              'alone)'.format(key))


def _socket_path(conf):
    return os.path.expanduser(conf['controller']['bind_socket_path'])


def wake_connect_url(conf):
    """The ZeroMQ address the broker sends wake-ups to."""
    if 'bind_socket_path' in conf['controller']:
        return 'ipc://' + _socket_path(conf)
    return conf['controller']['external_url']


def wake_bind_url(conf):
    """The ZeroMQ address the controller receives wake-ups on. For a unix socket its directory is made first (mode
    0700, as binding needs it to exist); the socket itself is made with the process's umask, so with the usual 022
    only its owner (the broker's user, `cc`) may connect."""
    controller = conf['controller']
    if 'bind_socket_path' in controller:
        path = _socket_path(conf)
        os.makedirs(os.path.dirname(path) or '.', mode=0o700, exist_ok=True)
        return 'ipc://' + path
    host = controller['bind_host']
    return 'tcp://{}:{}'.format('[{}]'.format(host) if ':' in host else host, controller['bind_port'])


def image_pull_policy(docker_conf):
    """The pull policy of `controller.docker`: `image_pull_policy`, else `never` with the seed's
    `core_image.disable_pull: True`, else `if-not-present` (what the registry check per experiment needs)."""
    disable_pull = (docker_conf.get('core_image') or {}).get('disable_pull', False)
    policy = docker_conf.get('image_pull_policy')
    if policy is None:
        return PULL_NEVER if disable_pull else PULL_IF_NOT_PRESENT
    if disable_pull and policy != PULL_NEVER:
        raise ConfigError('config key controller.docker.image_pull_policy: {} contradicts core_image.disable_pull: '
                          'True (which means never); set one of them'.format(policy))
    return policy


# --- keys that load but change nothing -------------------------------------------------------------------------
def _values_at(conf, dotted):
    """[(concrete key path, value)] of a dotted path whose parts may be `*` (any key of a mapping)."""
    found = [('', conf)]
    for part in dotted.split('.'):
        step = []
        for path, node in found:
            if not isinstance(node, dict):
                continue
            keys = list(node) if part == '*' else [part] if part in node else []
            step.extend(((path + '.' if path else '') + str(key), node[key]) for key in keys)
        found = step
    return found


def warn_no_effect_keys(conf):
    """One warning line per key of NO_EFFECT_KEYS that the file sets (and that would ask for something)."""
    for dotted, worth_warning, why in NO_EFFECT_KEYS:
        for path, value in _values_at(conf, dotted):
            if worth_warning(value):
                log.warning('config key %s (cc-agency 9.x) has no effect here: %s', path, why)


def apply_defaults(conf):
    """Fill in optional keys with their defaults (in place) and return conf."""
    for dotted, value in DEFAULTS.items():
        node = conf
        *parents, leaf = dotted.split('.')
        for key in parents:
            node = node.setdefault(key, {})
        node.setdefault(leaf, value)
    for node_conf in conf.get('controller', {}).get('docker', {}).get('nodes', {}).values():
        for key, value in NODE_DEFAULTS.items():
            node_conf.setdefault(key, list(value) if isinstance(value, list) else value)
    return conf


def load_config(path=None):
    """Read, validate and complete the configuration file; raise ConfigError with one clear line."""
    path = config_path(path)
    try:
        with open(path) as f:
            conf = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError('config file {} not found (use -c/--conf-file or ${})'.format(path, CONFIG_ENV_VAR))
    except OSError as e:
        raise ConfigError('config file {} cannot be read: {}'.format(path, e.strerror))
    except yaml.YAMLError as e:
        mark = getattr(e, 'problem_mark', None)
        where = ' (line {})'.format(mark.line + 1) if mark else ''
        raise ConfigError('config file {} is not valid YAML{}'.format(path, where))
    if not isinstance(conf, dict):
        raise ConfigError('config file {}: top level must be a mapping'.format(path))
    check_config(conf)
    warn_no_effect_keys(conf)
    return apply_defaults(conf)
