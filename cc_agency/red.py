"""Check a RED experiment as a researcher sends it and split it into what the agency stores.

red-val checks the RED itself (schema, CWL types, variables); this module adds what CC-Agency needs on top:
a Docker engine section (the published RED 9 schema's fields, `ram` defaulting to DEFAULT_RAM_MIB), optional
GPUs, the `ccagency` (or faice's `ccfaice`) execution settings, string values under `_`-protected keys, and a
bound on every number and text (below), so that nothing a RED carries can overflow a limit further down (the
scheduler's sums, the database, a command line). Every problem becomes a `RedError` with a message a researcher
can act on, naming the field (HTTP 400).
"""
import jsonschema
from red_val.exceptions import RedValidationError, RedSpecificationError, CWLSpecificationError
from red_val.red_variables import RedVariableError
from red_val.red_validation import red_validation

from cc_agency import red_schema_check, red_val_steps
from cc_agency.secrets import connector_accesses, protected_prefix_errors

DOCKER_ENGINES = ('docker', 'nvidia-docker')  # nvidia-docker: seed-era alias of docker with GPUs
# execution engines a RED sent here may name: ccagency (its settings are kept) and ccfaice (faice's local engine,
# empty settings by its published schema: a RED written for faice is accepted as it is and runs here)
EXECUTION_ENGINES = ('ccagency', 'ccfaice')

# --- bounds of every number and text a RED carries (a clear 400 naming the field beyond them) ----------------------
MIN_RAM_MIB = 256                       # the published RED 9 schema's minimum
MAX_RAM_MIB = 16 * 1024 * 1024          # 16 TiB: more than any single machine holds
DEFAULT_RAM_MIB = 1024                  # `ram` is optional in RED 9; a batch needs a limit to be placed and run
MAX_GPUS = 64                           # per batch: `gpus.count` and the length of `gpus.devices`
MAX_VRAM_MIB = 1024 * 1024              # 1 TiB per GPU (`gpus.devices[].vramMin`)
MAX_BATCH_CONCURRENCY_LIMIT = 1000000   # `batchConcurrencyLimit`; the controller's default is 64 (9.x's)
MAX_TIME_LIMIT_SECONDS = 10 ** 9          # `timeLimitSeconds`: about 31 years
MAX_FILE_SIZE_BYTES = 2 ** 50           # 1 PiB: `size` of an input file, a listed file or an output file
MAX_ARGUMENT_POSITION = 2 ** 31 - 1     # `inputBinding.position`: CWL's int
MAX_TEXT_CHARS = 1024 * 1024            # any string value (an inline script, a token, a doc text)
MAX_KEY_CHARS = 256                     # any key (input names, access keys)

_TEXT = {'type': 'string', 'maxLength': MAX_TEXT_CHARS}
_IMAGE_AUTH = {'type': 'object', 'additionalProperties': {'type': 'string'}}

DOCKER_SETTINGS_SCHEMA = {
    'type': 'object',
    'properties': {
        'version': _TEXT,  # RED 9: the engine version the author used; informative, stored as it is
        'image': {
            'type': 'object',
            'properties': {
                'url': {'type': 'string', 'minLength': 1, 'maxLength': MAX_TEXT_CHARS},
                'auth': _IMAGE_AUTH,
                # RED 9: where the image was built from (e.g. a Dockerfile's repository); informative, stored
                'source': {
                    'type': 'object',
                    'properties': {'url': _TEXT},
                    'required': ['url'],
                    'additionalProperties': False,
                },
            },
            'required': ['url'],
            'additionalProperties': False,
        },
        'ram': {'type': 'integer', 'minimum': MIN_RAM_MIB, 'maximum': MAX_RAM_MIB},
        'gpus': {
            'type': 'object',
            'properties': {
                'vendor': {'enum': ['nvidia']},
                'count': {'type': 'integer', 'minimum': 0, 'maximum': MAX_GPUS},
                'devices': {
                    'type': 'array',
                    'maxItems': MAX_GPUS,
                    'items': {
                        'type': 'object',
                        'properties': {'vramMin': {'type': 'integer', 'minimum': 0, 'maximum': MAX_VRAM_MIB}},
                        'additionalProperties': False,
                    },
                },
            },
            'required': ['vendor'],
            'not': {'required': ['count', 'devices']},
            'additionalProperties': False,
        },
    },
    'required': ['image'],
    'additionalProperties': False,
}

EXECUTION_SETTINGS_SCHEMAS = {
    'ccagency': {
        'type': 'object',
        'properties': {
            'access': {'type': 'object'},
            'batchConcurrencyLimit': {'type': 'integer', 'minimum': 1, 'maximum': MAX_BATCH_CONCURRENCY_LIMIT},
            'retryIfFailed': {'type': 'boolean'},
            # wall-clock limit of a run: cc_agency/timelimits.py
            'timeLimitSeconds': {'type': 'integer', 'minimum': 1, 'maximum': MAX_TIME_LIMIT_SECONDS},
        },
        'additionalProperties': False,
    },
    'ccfaice': {'type': 'object', 'additionalProperties': False},
}


class RedError(Exception):
    """The RED cannot be accepted; str(error) says why in one readable message."""


def _schema_error(prefix, schema, data):
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(data), key=lambda e: len(e.absolute_path))
    if errors:
        error = errors[0]
        where = '.'.join([prefix] + [str(p) for p in error.absolute_path])
        message = error.message if len(error.message) <= 200 else error.message[:200] + '...'
        raise RedError('{}: {}'.format(where, message))


def gpu_vram_requirements(gpus):
    """The VRAM minimum (MiB) of each GPU a RED asks for, as a list (empty: no GPU)."""
    if not gpus:
        return []
    if 'devices' in gpus:
        return [device.get('vramMin', 0) for device in gpus['devices']]
    return [0] * gpus.get('count', 0)


def validate_red(red):
    """red-val's `red_validation` (container required, no variables), with its schema step compiled and checked
    once per shape of batch (cc_agency/red_schema_check.py).

    The checks after the schema are red-val's own, in red_validation's order (cc_agency/red_val_steps.py).
    A RED that fails the compiled schema goes through red_validation itself, for red-val's readable message.
    """
    red_val_steps.check_keys_are_strings(red)
    try:
        red_schema_check.check(red)
    except red_schema_check.JsonSchemaException:
        red_validation(red, ignore_outputs=False, container_requirement=True, allow_variables=False)
        raise RedValidationError('RED-FILE does not comply with jsonschema')
    red_val_steps.checks_after_schema(red)


def _text_bounds_problem(red):
    """The path of the first string or key beyond MAX_TEXT_CHARS / MAX_KEY_CHARS, with its problem, or None.

    Iterative, and paths are only spelled out for the error (a RED of 10,000 batches is walked in milliseconds).
    """
    stack = [(red, None)]
    while stack:
        item, chain = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and len(key) > MAX_KEY_CHARS:
                    return _dotted(chain), 'a key is longer than {} characters'.format(MAX_KEY_CHARS)
                stack.append((child, (chain, key)))
        elif isinstance(item, list):
            stack.extend((child, (chain, index)) for index, child in enumerate(item))
        elif isinstance(item, str) and len(item) > MAX_TEXT_CHARS:
            return _dotted(chain), 'text longer than {} characters'.format(MAX_TEXT_CHARS)
    return None


def _dotted(chain):
    parts = []
    while chain is not None:
        chain, key = chain
        parts.append('[{}]'.format(key) if isinstance(key, int) else '.' + str(key))
    return ''.join(reversed(parts)).lstrip('.') or '<top level>'


def _size_problem(path, value):
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_FILE_SIZE_BYTES:
        return '{}.size: must be a whole number of bytes from 0 to {}'.format(path, MAX_FILE_SIZE_BYTES)
    return None


def _listing_problem(path, listing):
    for index, entry in enumerate(listing or ()):
        where = '{}.listing[{}]'.format(path, index)
        problem = ('size' in entry and _size_problem(where, entry['size'])) or \
            _listing_problem(where, entry.get('listing'))
        if problem:
            return problem
    return None


def _path_object_problem(path, value):
    """A bound broken by a File/Directory of a batch's inputs or outputs (`size`, listings), or None."""
    if not isinstance(value, dict):
        return None
    if 'size' in value:
        problem = _size_problem(path, value['size'])
        if problem:
            return problem
    return _listing_problem(path, value.get('listing'))


def number_bounds_problem(red, batches):
    """The first number of a (schema-valid) RED beyond its bound, as 'path: problem', or None.

    The engine and execution settings are bounded by their schemas above; this covers the numbers red-val leaves
    open: `inputBinding.position` and the `size` of files (inputs, listings, outputs). Job input values of type
    int/float are the experiment's own data: they are bounded by what the database stores (64-bit integers, finite
    floats; cc_agency.broker.storable).
    """
    for name, spec in (red['cli'].get('inputs') or {}).items():
        position = (spec.get('inputBinding') or {}).get('position')
        if position is not None and position > MAX_ARGUMENT_POSITION:
            return 'cli.inputs.{}.inputBinding.position: must be at most {}'.format(name, MAX_ARGUMENT_POSITION)
    for index, batch in enumerate(batches):
        for section in ('inputs', 'outputs'):
            for key, value in (batch.get(section) or {}).items():
                values = value if isinstance(value, list) else [value]
                for item_index, item in enumerate(values):
                    where = 'batches[{}].{}.{}'.format(index, section, key)
                    if isinstance(value, list):
                        where += '[{}]'.format(item_index)
                    problem = _path_object_problem(where, item)
                    if problem:
                        return problem
    return None


def _cloud_requested(red):
    """red-val 9.3 knows cc-cloud sections (top level and per batch); this agency has no cc-cloud."""
    sections = [red.get('cloud')] + [b.get('cloud') for b in red.get('batches') or () if isinstance(b, dict)]
    return any(isinstance(section, dict) and section.get('enable') for section in sections)


def parse_red(red):
    """Validate a RED and return (experiment fields, list of batches {inputs, outputs}).

    The experiment fields hold the RED without its batches and without `execution.settings.access` (the
    client's own login, never stored); `requirements` is what placement needs: ram, GPU VRAM minimums.
    Optional RED 9 fields the agency does not act on (`container.settings.version`, `image.source`, `doc` texts,
    `dirname`, ...) are kept in the stored RED; the controller builds a batch's job only from the fields it knows.
    """
    if not isinstance(red, dict):
        raise RedError('the RED must be a JSON object')
    text_problem = _text_bounds_problem(red)
    if text_problem:
        raise RedError('{}: {}'.format(*text_problem))
    try:
        validate_red(red)
    except RedVariableError as e:
        raise RedError('RED variables must be filled in before submission (e.g. by faice): {}'.format(e))
    except (RedValidationError, RedSpecificationError, CWLSpecificationError) as e:
        raise RedError(str(e))
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        # red-val trusts some shapes it has not checked yet; never let that become a 500
        raise RedError('RED is malformed: {}'.format(e))
    if _cloud_requested(red):
        raise RedError('cloud: cc-cloud is not available on this agency (remove the section or set enable: false)')

    container = red['container']
    if container['engine'] not in DOCKER_ENGINES:
        raise RedError('container.engine: "{}" is not supported, use "docker"'.format(container['engine']))
    _schema_error('container.settings', DOCKER_SETTINGS_SCHEMA, container['settings'])

    execution = red.get('execution')
    execution_settings = {}
    if execution is not None:
        if execution['engine'] not in EXECUTION_ENGINES:
            raise RedError('execution.engine: "{}" is not "ccagency" (or "ccfaice")'.format(execution['engine']))
        _schema_error('execution.settings', EXECUTION_SETTINGS_SCHEMAS[execution['engine']], execution['settings'])
        execution_settings = {k: v for k, v in execution['settings'].items() if k != 'access'}

    batches = red.get('batches')
    if batches is None:
        batches = [{'inputs': red['inputs'], 'outputs': red.get('outputs', {})}]
    if not batches:
        raise RedError('batches: the RED has no batch')
    batches = [{'inputs': b.get('inputs', {}), 'outputs': b.get('outputs') or {}} for b in batches]
    number_problem = number_bounds_problem(red, batches)
    if number_problem:
        raise RedError(number_problem)

    image_auth = container['settings']['image'].get('auth')
    bad_keys = protected_prefix_errors(image_auth or {}, 'container.settings.image.auth')
    for index, batch in enumerate(batches):
        for path, access in connector_accesses(batch):
            bad_keys.extend(protected_prefix_errors(access, 'batches[{}].{}'.format(index, path)))
    if bad_keys:
        raise RedError('{}: a protected key (leading "_") must have a string value'.format(bad_keys[0]))

    # the limit the batches are placed and run with, in the stored RED too, so that the API shows it
    settings = dict(container['settings'], ram=container['settings'].get('ram', DEFAULT_RAM_MIB))
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
