"""Load and check the operator's configuration file (the seed's `cc-agency.yml` format).

Every key of the seed keeps its meaning; new keys are optional. A wrong file is reported as one line that
names the key path and the problem (`ConfigError`), so the CLI and the daemons can fail at start-up clearly.
"""
import os

import jsonschema
import yaml

DEFAULT_CONFIG_PATH = os.path.join('~', '.config', 'cc-agency.yml')
CONFIG_ENV_VAR = 'CC_AGENCY_CONF'

_SECONDS = {'type': 'number', 'exclusiveMinimum': 0}
_POSITIVE = {'type': 'number', 'exclusiveMinimum': 0}
_COUNT = {'type': 'integer', 'minimum': 1}
_STRING = {'type': 'string', 'minLength': 1}

_AUTH_SCHEMA = {
    'type': 'object',
    'properties': {'username': _STRING, 'password': {'type': 'string'}},
    'required': ['username', 'password'],
    'additionalProperties': False,
}

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
                    },
                    'required': ['num_login_attempts', 'block_for_seconds', 'tokens_valid_for_seconds'],
                    'additionalProperties': False,
                },
            },
            'required': ['external_url', 'auth'],
            'additionalProperties': False,
        },
        'controller': {
            'type': 'object',
            'properties': {
                'external_url': {'type': 'string', 'pattern': '^tcp://'},
                'bind_host': _STRING,
                'bind_port': {'type': 'integer', 'minimum': 1, 'maximum': 65535},
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
                        # which user's batch is placed next (cc_agency/controller/fairshare.py POLICIES)
                        'policy': {'enum': ['fair', 'fifo']},
                        'user_weights': {'type': 'object', 'additionalProperties': _POSITIVE},
                        # wall-clock limits of batch runs (cc_agency/timelimits.py)
                        'default_time_limit_seconds': _COUNT,
                        'max_time_limit_seconds': _COUNT,
                    },
                    'required': ['strategy', 'attempts_to_fail'],
                    'additionalProperties': False,
                },
            },
            'required': ['external_url', 'bind_host', 'bind_port', 'docker', 'scheduling'],
            'additionalProperties': False,
        },
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
    'controller.scheduling.pass_interval_seconds': 2,
    'controller.scheduling.policy': 'fair',
}


class ConfigError(Exception):
    """The configuration file is missing, unreadable or wrong; the message is one line naming the key."""


def config_path(path=None):
    """The file to read: an explicit path, else $CC_AGENCY_CONF, else the seed's default path."""
    return os.path.expanduser(path or os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_PATH)


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
    return '.'.join(parts) or '<top level>', error.message


def check_config(conf):
    """Validate a parsed configuration; raise ConfigError naming the first wrong key path."""
    validator = jsonschema.Draft202012Validator(CONFIG_SCHEMA)
    errors = sorted(validator.iter_errors(conf), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        path, problem = _key_path(errors[0])
        raise ConfigError('config key {}: {}'.format(path, problem))


def apply_defaults(conf):
    """Fill in optional keys with their defaults (in place) and return conf."""
    for dotted, value in DEFAULTS.items():
        node = conf
        *parents, leaf = dotted.split('.')
        for key in parents:
            node = node.setdefault(key, {})
        node.setdefault(leaf, value)
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
    return apply_defaults(conf)
