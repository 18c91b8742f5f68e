"""Check a RED experiment as a researcher sends it and split it into what the agency stores.

red-val checks the RED itself (schema, CWL types, variables); this module adds what CC-Agency needs on top:
a Docker engine section with an image and `ram`, optional GPUs, the `ccagency` execution settings, string values
under `_`-protected keys. Every problem becomes a `RedError` with a message a researcher can act on (HTTP 400).
"""
import fastjsonschema
import jsonschema
from red_val import red_validation as red_val_checks
from red_val.exceptions import RedValidationError, RedSpecificationError, CWLSpecificationError
from red_val.red_variables import RedVariableError, get_variable_keys
from red_val.red_validation import red_validation
from red_val.schemas.red import red_schema

from cc_agency.secrets import connector_accesses, protected_prefix_errors

DOCKER_ENGINES = ('docker', 'nvidia-docker')  # nvidia-docker: seed-era alias of docker with GPUs
MIN_RAM_MIB = 256

_IMAGE_AUTH = {'type': 'object', 'additionalProperties': {'type': 'string'}}

DOCKER_SETTINGS_SCHEMA = {
    'type': 'object',
    'properties': {
        'image': {
            'type': 'object',
            'properties': {'url': {'type': 'string', 'minLength': 1}, 'auth': _IMAGE_AUTH},
            'required': ['url'],
            'additionalProperties': False,
        },
        'ram': {'type': 'integer', 'minimum': MIN_RAM_MIB},
        'gpus': {
            'type': 'object',
            'properties': {
                'vendor': {'enum': ['nvidia']},
                'count': {'type': 'integer', 'minimum': 0},
                'devices': {
                    'type': 'array',
                    'items': {
                        'type': 'object',
                        'properties': {'vramMin': {'type': 'integer', 'minimum': 0}},
                        'additionalProperties': False,
                    },
                },
            },
            'required': ['vendor'],
            'not': {'required': ['count', 'devices']},
            'additionalProperties': False,
        },
    },
    'required': ['image', 'ram'],
    'additionalProperties': False,
}

EXECUTION_SETTINGS_SCHEMA = {
    'type': 'object',
    'properties': {
        'access': {'type': 'object'},
        'batchConcurrencyLimit': {'type': 'integer', 'minimum': 1},
        'retryIfFailed': {'type': 'boolean'},
        'timeLimitSeconds': {'type': 'integer', 'minimum': 1},  # wall-clock limit of a run: cc_agency/timelimits.py
    },
    'additionalProperties': False,
}


class RedError(Exception):
    """The RED cannot be accepted; str(error) says why in one readable message."""


def _schema_error(prefix, schema, data):
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(data), key=lambda e: len(e.absolute_path))
    if errors:
        error = errors[0]
        where = '.'.join([prefix] + [str(p) for p in error.absolute_path])
        raise RedError('{}: {}'.format(where, error.message))


def gpu_vram_requirements(gpus):
    """The VRAM minimum (MiB) of each GPU a RED asks for, as a list (empty: no GPU)."""
    if not gpus:
        return []
    if 'devices' in gpus:
        return [device.get('vramMin', 0) for device in gpus['devices']]
    return [0] * gpus.get('count', 0)


# red-val's own schema, compiled once: validating a RED of 10,000 batches takes 0.3 s instead of 3.3 s
_red_schema_check = fastjsonschema.compile(red_schema)


def validate_red(red):
    """red-val's `red_validation` (container required, no variables), with its schema step compiled.

    The checks after the schema are red-val's own functions, in red_validation's order (red-val 9.3.0 is pinned).
    A RED that fails the compiled schema goes through red_validation itself, for red-val's readable message.
    """
    red_val_checks.check_keys_are_strings(red)
    try:
        _red_schema_check(red)
    except fastjsonschema.JsonSchemaException:
        red_validation(red, ignore_outputs=False, container_requirement=True, allow_variables=False)
        raise RedValidationError('RED-FILE does not comply with jsonschema')
    input_pairs, output_pairs = red_val_checks._create_cli_job_pairs(red, False)
    for pair in input_pairs + output_pairs:
        pair.check_type()
    variables = get_variable_keys(red)
    if variables:
        raise RedVariableError('Red variables are forbidden, but found the following: {}'.format(
            [v.key for v in variables]))
    if not red.get('container'):
        raise RedSpecificationError('container engine description is missing in REDFILE')
    red_val_checks._check_output_glob(red)


def parse_red(red):
    """Validate a RED and return (experiment fields, list of batches {inputs, outputs}).

    The experiment fields hold the RED without its batches and without `execution.settings.access` (the
    client's own login, never stored); `requirements` is what placement needs: ram, GPU VRAM minimums.
    """
    if not isinstance(red, dict):
        raise RedError('the RED must be a JSON object')
    try:
        validate_red(red)
    except RedVariableError as e:
        raise RedError('RED variables must be filled in before submission (e.g. by faice): {}'.format(e))
    except (RedValidationError, RedSpecificationError, CWLSpecificationError) as e:
        raise RedError(str(e))
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        # red-val trusts some shapes it has not checked yet; never let that become a 500
        raise RedError('RED is malformed: {}'.format(e))

    container = red['container']
    if container['engine'] not in DOCKER_ENGINES:
        raise RedError('container.engine: "{}" is not supported, use "docker"'.format(container['engine']))
    _schema_error('container.settings', DOCKER_SETTINGS_SCHEMA, container['settings'])

    execution = red.get('execution')
    execution_settings = {}
    if execution is not None:
        if execution['engine'] != 'ccagency':
            raise RedError('execution.engine: "{}" is not "ccagency"'.format(execution['engine']))
        _schema_error('execution.settings', EXECUTION_SETTINGS_SCHEMA, execution['settings'])
        execution_settings = {k: v for k, v in execution['settings'].items() if k != 'access'}

    batches = red.get('batches')
    if batches is None:
        batches = [{'inputs': red['inputs'], 'outputs': red.get('outputs', {})}]
    if not batches:
        raise RedError('batches: the RED has no batch')
    batches = [{'inputs': b.get('inputs', {}), 'outputs': b.get('outputs') or {}} for b in batches]

    image_auth = container['settings']['image'].get('auth')
    bad_keys = protected_prefix_errors(image_auth or {}, 'container.settings.image.auth')
    for index, batch in enumerate(batches):
        for path, access in connector_accesses(batch):
            bad_keys.extend(protected_prefix_errors(access, 'batches[{}].{}'.format(index, path)))
    if bad_keys:
        raise RedError('{}: a protected key (leading "_") must have a string value'.format(bad_keys[0]))

    settings = container['settings']
    experiment = {
        'redVersion': red['redVersion'],
        'cli': red['cli'],
        'container': {'engine': 'docker', 'settings': settings},
        'execution': {'engine': 'ccagency', 'settings': execution_settings},
        'requirements': {'ramMiB': settings['ram'], 'gpuVramMiB': gpu_vram_requirements(settings.get('gpus'))},
    }
    if 'doc' in red:
        experiment['doc'] = red['doc']
    return experiment, batches
