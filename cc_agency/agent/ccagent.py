#!/usr/bin/env python3
"""CC-Agency container-side agent: runs ONE batch of a RED experiment inside the experiment's own image.

Why it exists: the controller cannot reach into a container to download inputs, run the experiment command and
upload outputs, and the image may hold any Python 3 (>= 3.6) and nothing else. So the controller copies this single
standard-library-only file to `/cc/agent.py`, the batch's job file (with connector secrets) to `/cc/job.json`, and
runs `python3 /cc/agent.py /cc/job.json`. The agent then:

1. reads the job file and deletes it at once (secrets must not outlive their use);
2. checks connector CLI versions and validates connector access data (concurrently);
3. receives inputs into `/cc/inputs/<unique>/<basename>` (mounts first), checking size and checksum when given;
4. builds the command line (CWL v1.0 CommandLineTool subset) and runs it in `/cc/outputs`;
5. checks that each output glob matches exactly one path (unless optional) and sends outputs via connectors;
6. prints exactly ONE JSON document on stdout (docs/internal-contracts.md):
   `{state, command, process: {returnCode, durationSeconds}, inputs, outputs, debugInfo, streamFiles}`.
   The command's stdout and stderr stay whole in files of the container (`streamFiles` names them: in the outputs
   directory when the CLI names them, else in `/cc/streams`); the controller reads them after the exit, so the
   result stays small whatever the command printed.

Nothing else ever reaches stdout (connectors' and the command's output is captured), access data is written only to
0600 files in a private temporary directory and deleted right after each connector call, and debugInfo never
carries access values. The functions at the top are pure (no I/O) so they can be unit tested.

Testing only: the environment variable CC_AGENT_ROOT replaces `/cc` (inputs and outputs directories and the
default job file location).
"""

import base64
import concurrent.futures
import glob
import hashlib
import importlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

AGENT_ROOT_ENV_VAR = 'CC_AGENT_ROOT'
DEFAULT_AGENT_ROOT = '/cc'
# the contract with the controller (cc_agency/controller/jobs.py imports these, so each is defined once)
CONNECTOR_CLI_VERSION = '1'
CLI_VERSION_MODE = 'cli-version'
CHECKS_PASSED_LINE = 'cc-agent: connector checks passed'  # on stderr; the controller waits for it
STREAMS_DIR_NAME = 'streams'  # below the agent root, writable by the batch's user: the command's stdout/stderr when
# the CLI names none (the controller creates it)
FORK_SERVER_FLAG = '--connector-fork-server'  # `agent.py FLAG MODULE TARGET`: the fork server of one connector
STREAM_FILES_KEY = 'streamFiles'  # the result's {'stdout': path, 'stderr': path} of the command's streams, or None
# the result's {'stdout': base64, 'stderr': base64} of each stream file of at most STREAM_INLINE_MAX_BYTES (most
# commands print little): the controller then reads no file from the container (one get_archive costs the engine
# ~0.09 CPU-s); larger streams it reads from the files
STREAM_DATA_KEY = 'streamData'
STREAM_INLINE_MAX_BYTES = 64 * 1024

DEFAULT_OPTIONS = {
    'validateConnectors': True,
    'checkConnectorVersions': True,
    # each connector call is a Python process (~30 MiB); images may be limited to 256 MiB of RAM
    'maxParallelConnectors': 4,
}

SCALAR_TYPES = ('string', 'int', 'long', 'float', 'double', 'boolean')
PATH_CLASSES = ('File', 'Directory')
STREAM_TYPES = ('stdout', 'stderr')
KNOWN_BASE_TYPES = SCALAR_TYPES + PATH_CLASSES + STREAM_TYPES

# file names in the outputs directory for `type: stdout|stderr` outputs when `cli.stdout|stderr` names none
DEFAULT_STREAM_FILE_NAMES = {'stdout': 'cc-stdout.txt', 'stderr': 'cc-stderr.txt'}

FILE_PROPERTY_NAMES = ('path', 'basename', 'dirname', 'nameroot', 'nameext')
INPUT_REFERENCE_PATTERN = re.compile(r'\$\(inputs\.([A-Za-z_][A-Za-z0-9_\-]*)(?:\.([A-Za-z_]+))?\)')
SAFE_NAME_PATTERN = re.compile(r'[^A-Za-z0-9_.\-]')

COMMAND_STDERR_TAIL_LINE_COUNT = 20
COMMAND_STDERR_TAIL_BYTES = 64 * 1024  # what of the command's stderr is read for the lines of a failure
CONNECTOR_STDERR_TAIL_LINE_COUNT = 10
DEBUG_LINE_MAX_CHARS = 1000
CHECKSUM_CHUNK_BYTES = 1024 * 1024

# access keys whose string values are hidden in debugInfo (the controller already removed the `_` of protected keys)
SECRET_KEY_PATTERN = re.compile(r'pass|secret|token|key|credential|user|auth', re.IGNORECASE)
SECRET_MIN_CHARS = 3
REDACTED = '********'


class JobError(Exception):
    """The job cannot be run as described (bad inputs, types, connectors, globs). Carries readable lines."""

    def __init__(self, lines):
        if isinstance(lines, str):
            lines = [lines]
        self.lines = list(lines)
        super(JobError, self).__init__('; '.join(self.lines))


class CommandLineError(JobError):
    """The command line cannot be built from `cli` and the job inputs."""


class AgentTerminated(Exception):
    """The agent received SIGTERM (container stopped)."""


# ---------------------------------------------------------------------------------------------------------------------
# CWL types and parameters (pure)
# ---------------------------------------------------------------------------------------------------------------------

def parse_cwl_type(type_spec):
    """Describe a CWL type as {'base', 'isArray', 'isOptional', 'itemBinding'}.

    Accepts 'T', 'T?', 'T[]', 'T[]?', ['null', T] and {type: array, items: T, inputBinding?}. Raises JobError.
    """
    is_optional = False
    if isinstance(type_spec, list):
        non_null_types = [t for t in type_spec if t != 'null']
        if len(non_null_types) != 1:
            raise JobError('unsupported CWL union type {!r}'.format(type_spec))
        is_optional = len(non_null_types) < len(type_spec)
        type_spec = non_null_types[0]
    if isinstance(type_spec, dict):
        if type_spec.get('type') != 'array' or 'items' not in type_spec:
            raise JobError('unsupported CWL type {!r}'.format(type_spec))
        item_type = parse_cwl_type(type_spec['items'])
        if item_type['isArray']:
            raise JobError('nested array types are not supported: {!r}'.format(type_spec))
        return {'base': item_type['base'], 'isArray': True, 'isOptional': is_optional,
                'itemBinding': type_spec.get('inputBinding')}
    if not isinstance(type_spec, str):
        raise JobError('unsupported CWL type {!r}'.format(type_spec))
    name = type_spec
    if name.endswith('?'):
        is_optional = True
        name = name[:-1]
    is_array = name.endswith('[]')
    if is_array:
        name = name[:-2]
    if name not in KNOWN_BASE_TYPES:
        raise JobError('unsupported CWL type {!r}'.format(type_spec))
    return {'base': name, 'isArray': is_array, 'isOptional': is_optional, 'itemBinding': None}


def normalize_cli_parameters(parameters, section_name):
    """Return {key: spec dict} for CWL `inputs`/`outputs` given as a map of specs, a map of types, or a list."""
    if parameters is None:
        return {}
    if isinstance(parameters, list):
        normalized = {}
        for spec in parameters:
            if not isinstance(spec, dict) or not isinstance(spec.get('id'), str):
                raise JobError('cli.{} entries need an id: {!r}'.format(section_name, spec))
            normalized[spec['id'].lstrip('#')] = spec
        return normalized
    if not isinstance(parameters, dict):
        raise JobError('cli.{} must be a map or a list'.format(section_name))
    normalized = {}
    for key, spec in parameters.items():
        if isinstance(spec, (str, list)):
            spec = {'type': spec}
        if not isinstance(spec, dict):
            raise JobError('cli.{}.{} must be a map'.format(section_name, key))
        normalized[key] = spec
    return normalized


def base_command_argv(base_command):
    """CWL `baseCommand` (string, list of strings or null) as a list of arguments."""
    if base_command is None:
        return []
    if isinstance(base_command, str):
        return [base_command]
    if isinstance(base_command, list) and all(isinstance(part, str) for part in base_command):
        return list(base_command)
    raise CommandLineError('cli.baseCommand must be a string, a list of strings or null')


def is_path_object(value):
    """True for a CWL File or Directory object."""
    return isinstance(value, dict) and value.get('class') in PATH_CLASSES


def value_matches_type(base_type, value):
    """True if a single (non-array) value fits CWL base type `base_type` (File/Directory need a local 'path')."""
    if base_type == 'string':
        return isinstance(value, str)
    if base_type in ('int', 'long'):
        return isinstance(value, int) and not isinstance(value, bool)
    if base_type in ('float', 'double'):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if base_type == 'boolean':
        return isinstance(value, bool)
    if base_type in PATH_CLASSES:
        return isinstance(value, dict) and value.get('class') == base_type and isinstance(value.get('path'), str)
    return False


def describe_value_kind(value):
    """Short description of a value for error messages (never prints object contents)."""
    if isinstance(value, dict):
        return 'an object of class {!r}'.format(value.get('class'))
    if isinstance(value, list):
        return 'a list'
    return '{} {!r}'.format(type(value).__name__, value)


def input_type_problem(key, type_info, value):
    """A readable problem if `value` (None = missing) does not fit the input's type, else None."""
    if value is None:
        if type_info['isOptional']:
            return None
        return 'input {!r} is required but missing'.format(key)
    if type_info['isArray']:
        if not isinstance(value, list):
            return 'input {!r} must be a list of {} but is {}'.format(key, type_info['base'], describe_value_kind(value))
        items = value
    else:
        items = [value]
    for item in items:
        if not value_matches_type(type_info['base'], item):
            return 'input {!r} must be of type {} but is {}'.format(key, type_info['base'], describe_value_kind(item))
    return None


def render_argument_value(value):
    """One value as a command-line string: File/Directory -> local path, boolean -> true/false, number -> str."""
    if is_path_object(value):
        return value['path']
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return str(value)


def attach_prefix(prefix, separate, value_text):
    """Arguments for one rendered value with an optional prefix (`separate` false glues them together)."""
    if prefix is None:
        return [value_text]
    if separate:
        return [prefix, value_text]
    return [prefix + value_text]


def input_binding_argv(binding, type_info, value):
    """Arguments one bound, non-null input contributes (CWL prefix/separate/itemSeparator/boolean rules)."""
    prefix = binding.get('prefix')
    separate = binding.get('separate', True)
    if type_info['base'] == 'boolean' and not type_info['isArray']:
        return [prefix] if (value and prefix is not None) else []
    if not type_info['isArray']:
        return attach_prefix(prefix, separate, render_argument_value(value))
    if not value:
        return []
    item_separator = binding.get('itemSeparator')
    if item_separator is not None:
        joined = item_separator.join(render_argument_value(item) for item in value)
        return attach_prefix(prefix, separate, joined)
    item_binding = type_info['itemBinding']
    item_args = []
    for item in value:
        if item_binding is not None:
            item_type = {'base': type_info['base'], 'isArray': False, 'isOptional': False, 'itemBinding': None}
            item_args.extend(input_binding_argv(item_binding, item_type, item))
        else:
            item_args.append(render_argument_value(item))
    if prefix is None:
        return item_args
    if separate or not item_args:
        return [prefix] + item_args
    return [prefix + item_args[0]] + item_args[1:]


def build_command_line(cli_description, local_inputs):
    """Return the command line (list of str) for a CWL CommandLineTool subset and the job's local input values.

    `local_inputs` maps input keys to scalars, lists, or File/Directory objects carrying their local 'path' (see
    localize_inputs). baseCommand comes first, then inputs with an `inputBinding` sorted by (position, key).
    A missing required input or a value of the wrong type raises CommandLineError listing every problem.
    """
    if not isinstance(cli_description, dict):
        raise CommandLineError('cli must be a map')
    argv = base_command_argv(cli_description.get('baseCommand'))
    cli_inputs = normalize_cli_parameters(cli_description.get('inputs'), 'inputs')
    problems = []
    bound_arguments = []
    for key in sorted(cli_inputs):
        spec = cli_inputs[key]
        try:
            type_info = parse_cwl_type(spec.get('type'))
        except JobError as error:
            problems.append('input {!r}: {}'.format(key, error))
            continue
        value = local_inputs.get(key)
        if value is None:
            value = spec.get('default')
        problem = input_type_problem(key, type_info, value)
        if problem:
            problems.append(problem)
            continue
        binding = spec.get('inputBinding')
        if binding is None or value is None:
            continue
        if not isinstance(binding, dict):
            problems.append('input {!r}: inputBinding must be a map'.format(key))
            continue
        position = binding.get('position', 0)
        if not isinstance(position, int) or isinstance(position, bool):
            problems.append('input {!r}: inputBinding.position must be an integer'.format(key))
            continue
        bound_arguments.append((position, key, input_binding_argv(binding, type_info, value)))
    if problems:
        raise CommandLineError(problems)
    bound_arguments.sort(key=lambda entry: (entry[0], entry[1]))
    for _, _, arguments in bound_arguments:
        argv.extend(arguments)
    if not argv:
        raise CommandLineError('the command line is empty (no baseCommand and no bound inputs)')
    return argv


# ---------------------------------------------------------------------------------------------------------------------
# Input locations (pure)
# ---------------------------------------------------------------------------------------------------------------------

def safe_file_name(name):
    """`name` with characters outside [A-Za-z0-9_.-] replaced, never empty, '.' or '..' or hidden."""
    safe = SAFE_NAME_PATTERN.sub('_', name)
    if not safe or safe.startswith('.'):
        safe = '_' + safe
    return safe


def unique_dir_name(key, used_names):
    """A directory name for input `key` not yet in `used_names` (which it is added to)."""
    base_name = safe_file_name(key)
    name = base_name
    counter = 2
    while name in used_names:
        name = '{}_{}'.format(base_name, counter)
        counter += 1
    used_names.add(name)
    return name


def input_basename(key, path_object):
    """The local basename of an input File/Directory: its `basename`, else the (sanitized) key. Raises JobError."""
    basename = path_object.get('basename')
    if basename is None:
        return safe_file_name(key)
    if (not isinstance(basename, str) or basename in ('', '.', '..') or '/' in basename or '\0' in basename
            or (os.sep != '/' and os.sep in basename)):
        raise JobError('input {!r}: invalid basename {!r}'.format(key, basename))
    return basename


def compute_input_paths(job_inputs, inputs_dir):
    """Local paths of input Files/Directories: {key: path} or {key: [path or None per item]} for lists.

    Layout: `<inputs_dir>/<key>/<basename>` for single values, `<inputs_dir>/<key>/<index>/<basename>` for list
    items, so every key and index gets its own directory. Keys holding no File/Directory are left out.
    """
    paths = {}
    used_dir_names = set()
    for key in sorted(job_inputs):
        value = job_inputs[key]
        if is_path_object(value):
            key_dir = os.path.join(inputs_dir, unique_dir_name(key, used_dir_names))
            paths[key] = os.path.join(key_dir, input_basename(key, value))
        elif isinstance(value, list) and any(is_path_object(item) for item in value):
            key_dir = os.path.join(inputs_dir, unique_dir_name(key, used_dir_names))
            paths[key] = [
                os.path.join(key_dir, str(index), input_basename(key, item)) if is_path_object(item) else None
                for index, item in enumerate(value)
            ]
    return paths


def path_properties(path_class, path):
    """A CWL-like local File/Directory object: class, path, basename, dirname, nameroot, nameext."""
    basename = os.path.basename(path)
    nameroot, nameext = os.path.splitext(basename)
    return {'class': path_class, 'path': path, 'basename': basename, 'dirname': os.path.dirname(path),
            'nameroot': nameroot, 'nameext': nameext}


def localize_inputs(job_inputs, input_paths):
    """Job input values as the command sees them: File/Directory objects replaced by local path objects
    (no connector, no access data); scalars and lists of scalars unchanged."""
    local_inputs = {}
    for key, value in job_inputs.items():
        if key not in input_paths:
            local_inputs[key] = value
        elif isinstance(value, list):
            local_inputs[key] = [
                path_properties(item['class'], path) if path is not None else item
                for item, path in zip(value, input_paths[key])
            ]
        else:
            local_inputs[key] = path_properties(value['class'], input_paths[key])
    return local_inputs


def connector_of(path_object, label):
    """The validated connector {command, access, mount} of a job File/Directory/output. Raises JobError."""
    connector = path_object.get('connector')
    if not isinstance(connector, dict):
        raise JobError('{} has no connector'.format(label))
    command = connector.get('command')
    if not isinstance(command, str) or not command.strip():
        raise JobError('{}: connector.command must be a non-empty string'.format(label))
    access = connector.get('access')
    if not isinstance(access, dict):
        raise JobError('{}: connector.access must be a map'.format(label))
    mount = connector.get('mount', False)
    if not isinstance(mount, bool):
        raise JobError('{}: connector.mount must be a boolean'.format(label))
    return {'command': command, 'access': access, 'mount': mount}


def input_transfer(label, path_object, path):
    """One planned input transfer (receive or mount) for a job File/Directory placed at `path`."""
    connector = connector_of(path_object, label)
    if connector['mount'] and path_object['class'] != 'Directory':
        raise JobError('{}: only Directory inputs can be mounted'.format(label))
    size_bytes = path_object.get('size')
    if size_bytes is not None and (not isinstance(size_bytes, int) or isinstance(size_bytes, bool)):
        raise JobError('{}: size must be an integer number of bytes'.format(label))
    checksum = path_object.get('checksum')
    if checksum is not None:
        parse_checksum(checksum, label)
    listing = path_object.get('listing')
    if listing is not None and not isinstance(listing, list):
        raise JobError('{}: listing must be a list'.format(label))
    return {'label': label, 'direction': 'input', 'class': path_object['class'], 'command': connector['command'],
            'access': connector['access'], 'mount': connector['mount'], 'path': path, 'sizeBytes': size_bytes,
            'checksum': checksum, 'listing': listing}


def plan_input_transfers(job_inputs, input_paths):
    """All input transfers, in key order (list items in index order). Raises JobError for a bad File/Directory."""
    transfers = []
    for key in sorted(input_paths):
        value = job_inputs[key]
        if isinstance(value, list):
            for index, (item, path) in enumerate(zip(value, input_paths[key])):
                if path is not None:
                    transfers.append(input_transfer('input {!r}[{}]'.format(key, index), item, path))
        else:
            transfers.append(input_transfer('input {!r}'.format(key), value, input_paths[key]))
    return transfers


def parse_checksum(checksum, label):
    """('sha1', hex) from a CWL checksum 'sha1$<hex>' (other hashlib algorithms accepted too). Raises JobError."""
    if not isinstance(checksum, str) or '$' not in checksum:
        raise JobError('{}: checksum must look like sha1$<hex>'.format(label))
    algorithm, expected_hex = checksum.split('$', 1)
    algorithm = algorithm.lower()
    if algorithm not in hashlib.algorithms_guaranteed:
        raise JobError('{}: unsupported checksum algorithm {!r}'.format(label, algorithm))
    return algorithm, expected_hex.lower()


def expected_listing_entries(dir_path, listing):
    """Flatten a CWL Directory listing into [{'path', 'class', 'sizeBytes', 'checksum'}] below `dir_path`."""
    entries = []
    for entry in listing or []:
        if not isinstance(entry, dict) or not isinstance(entry.get('basename'), str):
            continue
        path = os.path.join(dir_path, entry['basename'])
        entries.append({'path': path, 'class': entry.get('class'), 'sizeBytes': entry.get('size'),
                        'checksum': entry.get('checksum')})
        if entry.get('class') == 'Directory' and isinstance(entry.get('listing'), list):
            entries.extend(expected_listing_entries(path, entry['listing']))
    return entries


# ---------------------------------------------------------------------------------------------------------------------
# Outputs (pure)
# ---------------------------------------------------------------------------------------------------------------------

def resolve_parameter_references(template, local_inputs):
    """Replace `$(inputs.KEY)` and `$(inputs.KEY.basename|dirname|nameroot|nameext|path)` in `template`.

    Other expressions (`$(...)`, `${...}`) and references to missing inputs raise JobError.
    """
    if not isinstance(template, str):
        raise JobError('expected a string, got {}'.format(describe_value_kind(template)))
    remainder = INPUT_REFERENCE_PATTERN.sub('', template)
    if '$(' in remainder or '${' in remainder:
        raise JobError('unsupported expression in {!r}; only $(inputs.KEY[.{}]) is supported'.format(
            template, '|'.join(FILE_PROPERTY_NAMES)))

    def replace(match):
        key, property_name = match.group(1), match.group(2)
        value = local_inputs.get(key)
        if value is None:
            raise JobError('{!r} refers to input {!r}, which has no value'.format(template, key))
        if property_name is None:
            if isinstance(value, (dict, list)):
                raise JobError('{!r}: input {!r} is not a scalar; use .path, .basename, ...'.format(template, key))
            return render_argument_value(value)
        if not is_path_object(value) or property_name not in FILE_PROPERTY_NAMES:
            raise JobError('{!r}: input {!r} has no property {!r}'.format(template, key, property_name))
        return value[property_name]

    return INPUT_REFERENCE_PATTERN.sub(replace, template)


def stream_file_names(cli_description, local_inputs):
    """{'stdout': name or None, 'stderr': name or None}: files in the outputs directory that capture the command's
    streams: `cli.stdout`/`cli.stderr` when named (references resolved), else a fixed name when an output has
    `type: stdout|stderr`, else None (captured privately)."""
    cli_outputs = normalize_cli_parameters(cli_description.get('outputs'), 'outputs')
    used_stream_types = set()
    for spec in cli_outputs.values():
        if spec.get('type') in STREAM_TYPES:
            used_stream_types.add(spec['type'])
    names = {}
    for stream in STREAM_TYPES:
        named = cli_description.get(stream)
        if named is None:
            names[stream] = DEFAULT_STREAM_FILE_NAMES[stream] if stream in used_stream_types else None
            continue
        name = resolve_parameter_references(named, local_inputs)
        if name in ('', '.', '..') or '/' in name or '\0' in name:
            raise JobError('cli.{} must be a plain file name, got {!r}'.format(stream, name))
        names[stream] = name
    return names


def output_glob_patterns(key, spec, local_inputs, stream_names):
    """The resolved glob patterns (relative to the outputs directory) of one cli output. Raises JobError."""
    type_info = parse_cwl_type(spec.get('type'))
    if type_info['base'] in STREAM_TYPES:
        return [stream_names[type_info['base']]]
    if type_info['base'] not in PATH_CLASSES:
        raise JobError('output {!r}: type {!r} is not supported (File, Directory, stdout, stderr)'.format(
            key, spec.get('type')))
    binding = spec.get('outputBinding')
    patterns = binding.get('glob') if isinstance(binding, dict) else None
    if patterns is None:
        raise JobError('output {!r} has no outputBinding.glob'.format(key))
    if not isinstance(patterns, list):
        patterns = [patterns]
    return [resolve_parameter_references(pattern, local_inputs) for pattern in patterns]


def plan_output_globs(cli_description, local_inputs, stream_names):
    """{key: [resolved glob patterns]} for every cli output, so bad globs fail before anything runs."""
    cli_outputs = normalize_cli_parameters(cli_description.get('outputs'), 'outputs')
    problems = []
    output_globs = {}
    for key in sorted(cli_outputs):
        try:
            output_globs[key] = output_glob_patterns(key, cli_outputs[key], local_inputs, stream_names)
        except JobError as error:
            problems.extend(error.lines)
    if problems:
        raise JobError(problems)
    return output_globs


def select_output_paths(cli_description, output_matches):
    """Decide each cli output's path from its glob matches. Pure.

    `output_matches`: {key: {'patterns': [...], 'matches': [{'path', 'class'}]}} (class File|Directory|other).
    Returns ({key: path | [paths] | None}, problems): a non-array output must match exactly one path of its class
    (none is fine when optional `?`); array outputs take every match of their class.
    """
    cli_outputs = normalize_cli_parameters(cli_description.get('outputs'), 'outputs')
    selected = {}
    problems = []
    for key in sorted(cli_outputs):
        type_info = parse_cwl_type(cli_outputs[key].get('type'))
        wanted_class = 'File' if type_info['base'] in STREAM_TYPES else type_info['base']
        patterns = ', '.join(repr(p) for p in output_matches[key]['patterns'])
        matches = output_matches[key]['matches']
        fitting = [m['path'] for m in matches if m['class'] == wanted_class]
        if type_info['isArray']:
            selected[key] = fitting
            continue
        selected[key] = None
        if not matches:
            if not type_info['isOptional']:
                problems.append('output {!r}: glob {} matched no path'.format(key, patterns))
        elif len(matches) > 1:
            problems.append('output {!r}: glob {} matched {} paths ({}), expected exactly one'.format(
                key, patterns, len(matches), ', '.join(os.path.basename(m['path']) for m in matches[:5])))
        elif not fitting:
            problems.append('output {!r}: glob {} matched {!r}, which is not a {}'.format(
                key, patterns, matches[0]['path'], wanted_class))
        else:
            selected[key] = fitting[0]
    return selected, problems


def plan_output_connectors(cli_description, job_outputs):
    """Validate the job's `outputs` against cli outputs; return [{key, label, class, command, access}] for those
    with a connector. Raises JobError."""
    cli_outputs = normalize_cli_parameters(cli_description.get('outputs'), 'outputs')
    if job_outputs is not None and not isinstance(job_outputs, dict):
        raise JobError('the job outputs must be a map')
    planned = []
    problems = []
    for key in sorted(job_outputs or {}):
        value = job_outputs[key]
        label = 'output {!r}'.format(key)
        if key not in cli_outputs:
            problems.append('{} is not declared in cli.outputs'.format(label))
            continue
        if value is None:
            continue
        if not isinstance(value, dict):
            problems.append('{} must be a map'.format(label))
            continue
        type_info = parse_cwl_type(cli_outputs[key].get('type'))
        cli_class = 'File' if type_info['base'] in STREAM_TYPES else type_info['base']
        job_class = value.get('class')
        if job_class in STREAM_TYPES:
            job_class = 'File'
        if job_class is not None and job_class != cli_class:
            problems.append('{} has class {!r} but cli.outputs declares {!r}'.format(label, value.get('class'),
                                                                                  cli_outputs[key].get('type')))
            continue
        if value.get('connector') is None:
            continue
        if type_info['isArray']:
            problems.append('{}: sending array outputs is not supported'.format(label))
            continue
        try:
            connector = connector_of(value, label)
        except JobError as error:
            problems.extend(error.lines)
            continue
        planned.append({'key': key, 'label': label, 'direction': 'output', 'class': cli_class,
                        'command': connector['command'], 'access': connector['access'], 'mount': False,
                        'path': None, 'listing': None})
    if problems:
        raise JobError(problems)
    return planned


# ---------------------------------------------------------------------------------------------------------------------
# Connector invocations (pure planning)
# ---------------------------------------------------------------------------------------------------------------------

def transfer_modes(transfer):
    """(validate mode, run mode) of the connector CLI for a planned transfer."""
    if transfer['direction'] == 'input':
        if transfer['mount']:
            return 'mount-dir-validate', 'mount-dir'
        if transfer['class'] == 'Directory':
            return 'receive-dir-validate', 'receive-dir'
        return 'receive-file-validate', 'receive-file'
    if transfer['class'] == 'Directory':
        return 'send-dir-validate', 'send-dir'
    return 'send-file-validate', 'send-file'


def connector_invocation(transfer, mode):
    """A connector call {label, command, mode, access, path, listing} for `transfer` in `mode`."""
    with_path = not mode.endswith('-validate')
    with_listing = mode in ('receive-dir', 'receive-dir-validate') and transfer.get('listing') is not None
    return {'label': transfer['label'], 'command': transfer['command'], 'mode': mode, 'access': transfer['access'],
            'path': transfer['path'] if with_path else None,
            'listing': transfer['listing'] if with_listing else None}


def connector_argv(invocation, access_file_path, listing_file_path):
    """argv of a connector call: `CMD MODE [ACCESSFILE] [PATH] [--listing LISTINGFILE]`."""
    argv = [invocation['command'], invocation['mode']]
    if access_file_path is not None:
        argv.append(access_file_path)
    if invocation['path'] is not None:
        argv.append(invocation['path'])
    if listing_file_path is not None:
        argv.extend(['--listing', listing_file_path])
    return argv


def connector_check_invocations(transfers, options):
    """Version checks (one per distinct command) and access validations for all transfers, per options."""
    invocations = []
    if options['checkConnectorVersions']:
        for command in sorted(set(t['command'] for t in transfers)):
            invocations.append({'label': 'connector {!r}'.format(command), 'command': command,
                                'mode': CLI_VERSION_MODE, 'access': None, 'path': None, 'listing': None})
    if options['validateConnectors']:
        for transfer in transfers:
            invocations.append(connector_invocation(transfer, transfer_modes(transfer)[0]))
    return invocations


def tail_lines(text, line_count):
    """The last `line_count` non-empty lines of `text`, each cut to DEBUG_LINE_MAX_CHARS."""
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    return [line[-DEBUG_LINE_MAX_CHARS:] for line in lines[-line_count:]]


def connector_outcome_problems(invocation, outcome):
    """Readable problems of a finished connector call (empty when it succeeded)."""
    call_name = '{} {}'.format(invocation['command'], invocation['mode'])
    if outcome['error'] is not None:
        return ['{}: {}'.format(invocation['label'], outcome['error'])]
    if outcome['returnCode'] != 0:
        lines = ['{}: {} failed with exit code {}'.format(invocation['label'], call_name, outcome['returnCode'])]
        stderr_lines = tail_lines(outcome['stderr'], CONNECTOR_STDERR_TAIL_LINE_COUNT)
        return lines + ['  ' + line for line in stderr_lines]
    if invocation['mode'] == CLI_VERSION_MODE:
        printed_lines = outcome['stdout'].strip().splitlines()
        printed_version = printed_lines[-1].strip() if printed_lines else ''
        if printed_version != CONNECTOR_CLI_VERSION:
            return ['{}: cli-version printed {!r}, the agent needs connector CLI version {}'.format(
                invocation['label'], printed_version[:100], CONNECTOR_CLI_VERSION)]
    return []


PYTHON_NAME_PATTERN = re.compile(r'python[0-9.]*$')
LAUNCHER_IMPORT_PATTERN = re.compile(r'from ([A-Za-z_][A-Za-z0-9_.]*) import ([A-Za-z_][A-Za-z0-9_]*)$')
LAUNCHER_MAIN_PATTERN = re.compile(r"""if __name__ == (['"])__main__\1:$""")
LAUNCHER_EXIT_PATTERN = re.compile(r'sys\.exit\(([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\(\)\)$')
LAUNCHER_ARGV0_PREFIX = 'sys.argv[0] = re.sub('
LAUNCHER_ARGV0_SUFFIXES = re.compile(r'(-script\.pyw?|\.exe)?$')  # what that line of pip's launchers removes


def console_script_entry(text):
    """(interpreter argv, module, target) when `text` is a console-script launcher as pip writes them, else None.

    Such a launcher is a python shebang, `import re` / `import sys`, one `from MODULE import NAME`, and under
    `if __name__ == '__main__':` pip's fix of argv[0] and `sys.exit(NAME[.ATTR...]())`; `target` is
    `NAME[.ATTR...]`. Nothing else is accepted (a comment or blank line aside): importing such a connector's module
    runs none of its work, so a fork server may import it once and run every call as a fork (pure).
    """
    lines = text.splitlines()
    if not lines or not lines[0].startswith('#!'):
        return None
    interpreter = lines[0][2:].split()
    if len(interpreter) == 2 and os.path.basename(interpreter[0]) == 'env':
        python = interpreter[1]
    elif len(interpreter) == 1:
        python = interpreter[0]
    else:
        return None
    if not PYTHON_NAME_PATTERN.match(os.path.basename(python)):
        return None
    imported = target = None
    in_main = False
    for line in lines[1:]:
        code = line.strip()
        if not code or code.startswith('#'):
            continue
        top_level = line == code
        if top_level and not in_main and code in ('import re', 'import sys'):
            continue
        match = LAUNCHER_IMPORT_PATTERN.match(code)
        if top_level and not in_main and match and imported is None:
            imported = match.groups()
            continue
        if top_level and not in_main and LAUNCHER_MAIN_PATTERN.match(code):
            in_main = True
            continue
        if not in_main or top_level:
            return None
        if code.startswith(LAUNCHER_ARGV0_PREFIX) and code.endswith(', sys.argv[0])'):
            continue
        match = LAUNCHER_EXIT_PATTERN.match(code)
        if match and target is None:
            target = match.group(1)
            continue
        return None
    if imported is None or target is None or target.split('.')[0] != imported[1]:
        return None
    return interpreter, imported[0], target


# ---------------------------------------------------------------------------------------------------------------------
# Result helpers (pure)
# ---------------------------------------------------------------------------------------------------------------------

def read_options(job):
    """The job's options merged over DEFAULT_OPTIONS (wrong types fall back to the default)."""
    options = dict(DEFAULT_OPTIONS)
    given = job.get('options') or {}
    if isinstance(given, dict):
        for name, default in DEFAULT_OPTIONS.items():
            value = given.get(name)
            if isinstance(default, bool) and isinstance(value, bool):
                options[name] = value
            elif (isinstance(default, int) and not isinstance(default, bool) and isinstance(value, int)
                  and not isinstance(value, bool) and value > 0):
                options[name] = value
    return options


def decode_output_tail(data_bytes, max_output_bytes):
    """The last `max_output_bytes` of a captured stream as text (UTF-8, invalid bytes replaced)."""
    if len(data_bytes) > max_output_bytes:
        data_bytes = data_bytes[len(data_bytes) - max_output_bytes:]
    return data_bytes.decode('utf-8', 'replace')


def collect_secret_strings(job):
    """String values under secret-like keys (password, privateKey, username, token, auth, ...) of every connector
    access in the job's inputs and outputs, longest first, to be hidden from debugInfo."""
    secrets = set()

    def visit(data, inside_secret):
        if isinstance(data, dict):
            for key, value in data.items():
                visit(value, inside_secret or bool(SECRET_KEY_PATTERN.search(str(key))))
        elif isinstance(data, list):
            for item in data:
                visit(item, inside_secret)
        elif inside_secret and isinstance(data, str) and len(data) >= SECRET_MIN_CHARS:
            secrets.add(data)

    def visit_values(values):
        for value in (values or {}).values() if isinstance(values, dict) else []:
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, dict) and isinstance(item.get('connector'), dict):
                    visit(item['connector'].get('access'), False)

    visit_values(job.get('inputs'))
    visit_values(job.get('outputs'))
    return sorted(secrets, key=len, reverse=True)


def redact_lines(lines, secret_strings):
    """`lines` with every occurrence of a secret string replaced by REDACTED."""
    redacted = []
    for line in lines:
        for secret in secret_strings:
            line = line.replace(secret, REDACTED)
        redacted.append(line)
    return redacted


def describe_inputs_for_result(local_inputs, sizes_bytes):
    """Job inputs as reported: scalars as given, File/Directory as {class, path[, size]} (no access data)."""
    described = {}
    for key, value in local_inputs.items():
        items = value if isinstance(value, list) else [value]
        reported = []
        for item in items:
            if is_path_object(item):
                entry = {'class': item['class'], 'path': item['path']}
                if sizes_bytes.get(item['path']) is not None:
                    entry['size'] = sizes_bytes[item['path']]
                reported.append(entry)
            else:
                reported.append(item)
        described[key] = reported if isinstance(value, list) else reported[0]
    return described


def new_result():
    """A failed result with nothing done yet; run_batch fills it in."""
    return {'state': 'failed', 'command': [], 'process': {'returnCode': None, 'durationSeconds': None},
            'inputs': {}, 'outputs': {}, 'connectorChecks': None, 'debugInfo': [], STREAM_FILES_KEY: None,
            STREAM_DATA_KEY: None}


# ---------------------------------------------------------------------------------------------------------------------
# I/O: connectors
# ---------------------------------------------------------------------------------------------------------------------

def write_private_json(private_dir, prefix, data):
    """Write `data` as JSON to a new 0600 file in `private_dir`; return its path."""
    fd, path = tempfile.mkstemp(prefix=prefix, suffix='.json', dir=private_dir)
    with os.fdopen(fd, 'w') as handle:
        json.dump(data, handle)
    return path


def process_return_code(status):
    """A `waitpid` status as subprocess reports it: the exit code, or -N when signal N killed the process."""
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def write_line(fd, data):
    """Write `data` as one JSON line to the raw file descriptor `fd` (unbuffered: nothing is left for a fork)."""
    data_bytes = (json.dumps(data) + '\n').encode('utf-8')
    while data_bytes:
        data_bytes = data_bytes[os.write(fd, data_bytes):]


def load_entry_point(module_name, target):
    """The callable `target` (`NAME[.ATTR...]`) as `from MODULE import NAME` gives it."""
    module = importlib.import_module(module_name)
    name, _, attributes = target.partition('.')
    try:
        entry = getattr(module, name)
    except AttributeError:  # `from PACKAGE import SUBMODULE`
        entry = importlib.import_module('{}.{}'.format(module_name, name))
    for attribute in attributes.split('.') if attributes else ():
        entry = getattr(entry, attribute)
    return entry


class ForkServerChild(Exception):
    """Raised in a process forked by the fork server: it is now a connector call, to run at the top level."""

    def __init__(self, entry):
        super(ForkServerChild, self).__init__('connector call')
        self.entry = entry


def serve_connector_forks(module_name, target):
    """The fork server of one console-script connector: `python3 agent.py --connector-fork-server MODULE TARGET`.

    Imports the connector's module once and says so (one JSON line on stdout: {ready[, error]}), then forks one
    child per request read from stdin (one JSON line: {id, argv, stdout, stderr}) and reports each child's exit as
    one JSON line {id, returnCode}; returns when stdin is closed and every child has ended. In a child it raises
    ForkServerChild: the child's streams are the request's files and sys.argv is its argv, and the caller runs the
    entry point as the launcher's last line would (`sys.exit(entry())`), so that a call ends exactly as a process
    of its own does (SystemExit, uncaught exceptions, atexit handlers, flushed streams).
    """
    reply_fd = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)  # what the imports print must not reach the replies
    sys.argv = [sys.argv[0]]  # a module that read its arguments on import would find none, not the server's
    try:
        entry = load_entry_point(module_name, target)
    except BaseException as error:
        write_line(reply_fd, {'ready': False, 'error': '{}: {}'.format(type(error).__name__, error)})
        return
    if threading.active_count() > 1:  # a fork keeps only its own thread: such a module runs as processes
        write_line(reply_fd, {'ready': False, 'error': 'importing the connector started threads'})
        return
    write_line(reply_fd, {'ready': True})
    wake_read, wake_write = os.pipe()
    for fd in (wake_read, wake_write):
        os.set_blocking(fd, False)
    signal.signal(signal.SIGCHLD, lambda signal_number, frame: None)
    signal.set_wakeup_fd(wake_write)
    children = {}
    pending = b''
    reading = True
    while reading or children:
        readable = select.select([0, wake_read] if reading else [wake_read], [], [])[0]
        if wake_read in readable:
            while True:
                try:
                    if not os.read(wake_read, 4096):
                        break
                except BlockingIOError:
                    break
        if 0 in readable:
            chunk = os.read(0, 65536)
            reading = bool(chunk)
            pending += chunk
            while b'\n' in pending:
                line, pending = pending.split(b'\n', 1)
                request = json.loads(line.decode('utf-8'))
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    become_connector_call(request, entry, devnull, (reply_fd, wake_read, wake_write))
                children[pid] = request['id']
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid in children:
                write_line(reply_fd, {'id': children.pop(pid), 'returnCode': process_return_code(status)})


def become_connector_call(request, entry, devnull, server_fds):
    """In a child of the fork server: drop the server's signals and descriptors, take the request's streams and
    argv, and raise ForkServerChild (the entry point runs at the top level)."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for fd in server_fds:
        os.close(fd)
    os.dup2(devnull, 0)
    os.close(devnull)
    for fd, path in ((1, request['stdout']), (2, request['stderr'])):
        stream_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(stream_fd, fd)
        os.close(stream_fd)
    argv = request['argv']
    sys.argv = [LAUNCHER_ARGV0_SUFFIXES.sub('', argv[0])] + argv[1:]
    raise ForkServerChild(entry)


class ForkServerLost(Exception):
    """A connector's fork server ended while a call of it ran."""


class ForkServer:
    """The agent's end of one connector's fork server (serve_connector_forks): calls from any thread."""

    def __init__(self, interpreter, module_name, target, agent_path):
        self.process = subprocess.Popen(interpreter + [agent_path, FORK_SERVER_FLAG, module_name, target],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.ready = json.loads(self.process.stdout.readline().decode('utf-8') or '{"ready": false}')['ready']
        self._lock = threading.Lock()
        self._next_id = 0
        self._waiting = {}  # id -> [threading.Event, return code]
        if self.ready:
            threading.Thread(target=self._read_replies, daemon=True).start()
        else:
            self.close()

    def call(self, argv, stdout_path, stderr_path):
        """Run the connector with `argv` (its streams into the two files); its return code, or None when the
        server had ended before the call was sent (nothing of it ran). Raises ForkServerLost when the server ended
        during the call: its fork may still run, so the call must not be made again."""
        waiter = [threading.Event(), None]
        with self._lock:
            self._next_id += 1
            self._waiting[self._next_id] = waiter
            request = {'id': self._next_id, 'argv': argv, 'stdout': stdout_path, 'stderr': stderr_path}
            try:
                self.process.stdin.write((json.dumps(request) + '\n').encode('utf-8'))
                self.process.stdin.flush()
            except (OSError, ValueError):
                self._waiting.pop(self._next_id)
                return None
        waiter[0].wait()
        if waiter[1] is None:
            raise ForkServerLost()
        return waiter[1]

    def _read_replies(self):
        for line in self.process.stdout:
            reply = json.loads(line.decode('utf-8'))
            with self._lock:
                waiter = self._waiting.pop(reply['id'], None)
            if waiter is not None:
                waiter[1] = reply['returnCode']
                waiter[0].set()
        with self._lock:  # the server ended: no reply will come
            for waiter in self._waiting.values():
                waiter[0].set()
            self._waiting.clear()

    def close(self):
        """Close the server's stdin: it ends once its running calls have."""
        try:
            self.process.stdin.close()
        except OSError:
            pass


class ConnectorRunner:
    """Runs connector calls, each with its access (and listing) in private 0600 files deleted right after.

    A connector installed as a console script (console_script_entry) runs through a fork server started at its
    first call: its module is imported once per container and every call is a fork of that process, so that the
    connector calls of a batch (checks, receives, sends) do not each start an interpreter and import the connector
    again: 0.3-0.4 s of CPU per call in an image whose packages have no .pyc files (pip --no-compile), 0.1 s with
    them. Any other connector (or one whose import fails) runs as a process of its own.
    """

    def __init__(self, private_dir):
        self.private_dir = private_dir
        self._lock = threading.Lock()
        self._servers = {}  # the connector's executable -> its ForkServer, or None: it runs as processes

    def run(self, invocation):
        """Run one connector call; {'returnCode', 'stdout', 'stderr', 'error'} ('error' set when it could not be
        started)."""
        written_paths = []
        try:
            access_file_path = None
            listing_file_path = None
            if invocation['mode'] not in (CLI_VERSION_MODE, 'umount-dir'):
                access_file_path = write_private_json(self.private_dir, 'access-', invocation['access'])
                written_paths.append(access_file_path)
            if invocation['listing'] is not None:
                listing_file_path = write_private_json(self.private_dir, 'listing-', invocation['listing'])
                written_paths.append(listing_file_path)
            argv = connector_argv(invocation, access_file_path, listing_file_path)
            executable = shutil.which(invocation['command'])
            if executable is None:
                return connector_not_started(invocation, 'was not found in PATH')
            server = self._server(executable)
            if server is not None:
                outcome = self._forked(server, [executable] + argv[1:], written_paths)
                if outcome is not None:
                    return outcome
            return self._process(invocation, [executable] + argv[1:])
        finally:
            for path in written_paths:
                try:
                    os.remove(path)
                except OSError:
                    pass

    def _server(self, executable):
        with self._lock:
            if executable not in self._servers:
                self._servers[executable] = None
                try:
                    with open(executable, 'rb') as handle:
                        entry = console_script_entry(handle.read(4096).decode('utf-8', 'replace'))
                    if entry is not None:
                        server = ForkServer(entry[0], entry[1], entry[2], os.path.abspath(__file__))
                        self._servers[executable] = server if server.ready else None
                except (OSError, ValueError):
                    pass
            return self._servers[executable]

    def _forked(self, server, argv, written_paths):
        """A call through the fork server; None when the server had ended before it (then it runs as a process)."""
        stream_paths = []
        for prefix in ('stdout-', 'stderr-'):
            fd, path = tempfile.mkstemp(prefix=prefix, dir=self.private_dir)
            os.close(fd)
            written_paths.append(path)
            stream_paths.append(path)
        try:
            return_code = server.call(argv, stream_paths[0], stream_paths[1])
        except ForkServerLost:
            return {'returnCode': None, 'stdout': '', 'stderr': '',
                    'error': 'connector command {!r}: its fork server ended while the call ran'.format(argv[0])}
        if return_code is None:
            return None
        texts = []
        for path in stream_paths:
            with open(path, 'rb') as handle:
                texts.append(handle.read().decode('utf-8', 'replace'))
        return {'returnCode': return_code, 'stdout': texts[0], 'stderr': texts[1], 'error': None}

    @staticmethod
    def _process(invocation, argv):
        try:
            completed = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as error:
            return connector_not_started(invocation, 'could not be started: {}'.format(error.strerror or error))
        return {'returnCode': completed.returncode, 'stdout': completed.stdout.decode('utf-8', 'replace'),
                'stderr': completed.stderr.decode('utf-8', 'replace'), 'error': None}

    def close(self):
        with self._lock:
            for server in self._servers.values():
                if server is not None:
                    server.close()


def connector_not_started(invocation, why):
    return {'returnCode': None, 'stdout': '', 'stderr': '',
            'error': 'connector command {!r} {}'.format(invocation['command'], why)}


def run_concurrently(tasks, max_workers):
    """Run zero-argument callables in threads (at most `max_workers` at a time); return results in order."""
    if len(tasks) <= 1:
        return [task() for task in tasks]
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(tasks))))
    try:
        futures = [pool.submit(task) for task in tasks]
        return [future.result() for future in futures]
    finally:
        # normally every task is done here; after SIGTERM do not wait for running connectors
        pool.shutdown(wait=False)


def run_connectors_concurrently(invocations, runner, options, after_success=None):
    """Run connector calls concurrently; return all problems (optionally running `after_success(invocation)`,
    which returns problems, in the same thread right after a call succeeded)."""
    def task_for(invocation):
        def task():
            problems = connector_outcome_problems(invocation, runner.run(invocation))
            if not problems and after_success is not None:
                problems = after_success(invocation)
            return problems
        return task

    results = run_concurrently([task_for(i) for i in invocations], options['maxParallelConnectors'])
    return [problem for problems in results for problem in problems]


# ---------------------------------------------------------------------------------------------------------------------
# I/O: checks of received files
# ---------------------------------------------------------------------------------------------------------------------

def file_checksum_hex(path, algorithm):
    """Hex digest of the file at `path`."""
    digest = hashlib.new(algorithm)
    with open(path, 'rb') as handle:
        for chunk in iter(lambda: handle.read(CHECKSUM_CHUNK_BYTES), b''):
            digest.update(chunk)
    return digest.hexdigest()


def path_class(path):
    """'File', 'Directory' or 'other' (missing paths included) for a local path."""
    if os.path.isdir(path):
        return 'Directory'
    if os.path.isfile(path):
        return 'File'
    return 'other'


def check_received_path(label, path, expected_class, expected_size_bytes, expected_checksum):
    """Problems of one received path: existence and class, size and checksum when given."""
    actual_class = path_class(path)
    if actual_class != expected_class:
        what = 'does not exist' if not os.path.lexists(path) else 'is not a {}'.format(expected_class)
        return ['{}: {} {} after receiving'.format(label, path, what)]
    problems = []
    if expected_class == 'File' and expected_size_bytes is not None:
        actual_size_bytes = os.path.getsize(path)
        if actual_size_bytes != expected_size_bytes:
            problems.append('{}: {} has {} bytes, expected {}'.format(label, path, actual_size_bytes,
                                                                      expected_size_bytes))
    if expected_class == 'File' and expected_checksum is not None:
        algorithm, expected_hex = parse_checksum(expected_checksum, label)
        actual_hex = file_checksum_hex(path, algorithm)
        if actual_hex != expected_hex:
            problems.append('{}: {} has checksum {}${}, expected {}${}'.format(label, path, algorithm, actual_hex,
                                                                             algorithm, expected_hex))
    return problems


def check_received_input(transfer):
    """Problems of a received input: the path itself, and every entry of a Directory's listing."""
    problems = check_received_path(transfer['label'], transfer['path'], transfer['class'],
                                   transfer.get('sizeBytes'), transfer.get('checksum'))
    if problems or transfer['class'] != 'Directory' or transfer['mount']:
        return problems
    for entry in expected_listing_entries(transfer['path'], transfer.get('listing')):
        if entry['class'] in PATH_CLASSES:
            problems.extend(check_received_path(transfer['label'], entry['path'], entry['class'],
                                                entry['sizeBytes'], entry['checksum']))
    return problems


# ---------------------------------------------------------------------------------------------------------------------
# I/O: batch phases
# ---------------------------------------------------------------------------------------------------------------------

def check_connectors(transfers, options, runner, result):
    """Phase 1: connector CLI versions and access validations, all concurrently. Returns problems.

    Records the outcome in result['connectorChecks'] (passed | failed | skipped) and, unless a check failed,
    prints CHECKS_PASSED_LINE on stderr at once: the controller watches for it to start the experiment's other
    batches without checks, long before this batch ends."""
    invocations = connector_check_invocations(transfers, options)
    problems = run_connectors_concurrently(invocations, runner, options) if invocations else []
    result['connectorChecks'] = 'failed' if problems else 'passed' if invocations else 'skipped'
    if not problems:
        sys.stderr.write(CHECKS_PASSED_LINE + '\n')
        sys.stderr.flush()
    return problems


def receive_inputs(transfers, options, runner, mounted_paths):
    """Phase 2: mounts (concurrently), then receives (concurrently), each checked right after. Successful mounts
    are appended to `mounted_paths` as (command, path). Returns problems."""
    by_path = dict((t['path'], t) for t in transfers)
    for transfer in transfers:
        os.makedirs(os.path.dirname(transfer['path']), exist_ok=True)

    def after_success(invocation):
        transfer = by_path[invocation['path']]
        if transfer['mount']:
            mounted_paths.append((transfer['command'], transfer['path']))
        return check_received_input(transfer)

    problems = []
    for mount_phase in (True, False):
        invocations = [connector_invocation(t, transfer_modes(t)[1]) for t in transfers if t['mount'] == mount_phase]
        problems.extend(run_connectors_concurrently(invocations, runner, options, after_success))
        if problems:
            break
    return problems


def unmount_inputs(mounted_paths, options, runner):
    """`umount-dir PATH` for every mounted input. Returns problems."""
    invocations = [{'label': 'mounted input {!r}'.format(path), 'command': command, 'mode': 'umount-dir',
                    'access': None, 'path': path, 'listing': None} for command, path in mounted_paths]
    return run_connectors_concurrently(invocations, runner, options)


def send_outputs(output_connectors, selected_paths, options, runner):
    """Phase 4: send every output with a connector, concurrently. Returns problems."""
    invocations = []
    for planned in output_connectors:
        transfer = dict(planned, path=selected_paths.get(planned['key']))
        if transfer['path'] is None:
            continue  # optional output that was not produced
        invocations.append(connector_invocation(transfer, transfer_modes(transfer)[1]))
    return run_connectors_concurrently(invocations, runner, options)


def find_output_matches(output_globs, outputs_dir):
    """{key: {'patterns', 'matches': [{'path', 'class'}]}} for every output, globbing in `outputs_dir`."""
    output_matches = {}
    for key, patterns in output_globs.items():
        paths = set()
        for pattern in patterns:
            paths.update(glob.glob(os.path.join(outputs_dir, pattern)))
        output_matches[key] = {'patterns': patterns,
                               'matches': [{'path': p, 'class': path_class(p)} for p in sorted(paths)]}
    return output_matches


def describe_outputs_for_result(selected_paths, sent_keys):
    """Outputs as reported: {key: {class, path, size?, sent}} (None for an absent optional output)."""
    described = {}
    for key, value in selected_paths.items():
        paths = value if isinstance(value, list) else [value]
        reported = []
        for path in paths:
            if path is None:
                reported.append(None)
                continue
            entry = {'class': path_class(path), 'path': path, 'sent': key in sent_keys}
            if entry['class'] == 'File':
                entry['size'] = os.path.getsize(path)
            reported.append(entry)
        described[key] = reported if isinstance(value, list) else reported[0]
    return described


def input_sizes_bytes(local_inputs):
    """{path: size in bytes} of every local input File."""
    sizes = {}
    for value in local_inputs.values():
        for item in value if isinstance(value, list) else [value]:
            if is_path_object(item) and item['class'] == 'File' and os.path.isfile(item['path']):
                sizes[item['path']] = os.path.getsize(item['path'])
    return sizes


def read_file_tail_bytes(path, max_bytes):
    """The last `max_bytes` bytes of a file (b'' if it does not exist)."""
    try:
        with open(path, 'rb') as handle:
            handle.seek(0, os.SEEK_END)
            size_bytes = handle.tell()
            handle.seek(max(0, size_bytes - max_bytes))
            return handle.read()
    except OSError:
        return b''


def small_streams(stream_paths):
    """{stream: base64 of the file} for each stream file of at most STREAM_INLINE_MAX_BYTES."""
    data = {}
    for stream, path in stream_paths.items():
        try:
            with open(path, 'rb') as handle:
                content = handle.read(STREAM_INLINE_MAX_BYTES + 1)
        except OSError:
            continue
        if len(content) <= STREAM_INLINE_MAX_BYTES:
            data[stream] = base64.b64encode(content).decode('ascii')
    return data


def run_experiment_command(command, outputs_dir, stdout_path, stderr_path):
    """Run the command in `outputs_dir` with its streams captured to files.

    Returns (return code or None, problem line or None, duration in seconds).
    """
    start_seconds = time.time()
    with open(stdout_path, 'wb') as stdout_file, open(stderr_path, 'wb') as stderr_file:
        try:
            process = subprocess.Popen(command, cwd=outputs_dir, stdin=subprocess.DEVNULL, stdout=stdout_file,
                                       stderr=stderr_file)
        except FileNotFoundError:
            return None, 'command {!r} was not found (PATH={})'.format(command[0], os.environ.get('PATH', '')), 0.0
        except PermissionError:
            return None, 'command {!r} is not executable (permission denied)'.format(command[0]), 0.0
        except OSError as error:
            return None, 'command {!r} could not be started: {}'.format(command[0], error), 0.0
        try:
            return_code = process.wait()
        except BaseException:
            process.kill()
            process.wait()
            raise
    return return_code, None, time.time() - start_seconds


def command_failure_lines(return_code, stderr_tail_text):
    """debugInfo lines for a command that exited non-zero or was killed."""
    if return_code < 0:
        lines = ['command was killed by signal {} (exit code {})'.format(-return_code, return_code)]
    else:
        lines = ['command exited with code {}'.format(return_code)]
    stderr_lines = tail_lines(stderr_tail_text, COMMAND_STDERR_TAIL_LINE_COUNT)
    if stderr_lines:
        lines.append('last lines of stderr:')
        lines.extend('  ' + line for line in stderr_lines)
    return lines


# ---------------------------------------------------------------------------------------------------------------------
# The batch
# ---------------------------------------------------------------------------------------------------------------------

def fail(result, lines):
    """Mark `result` failed with debugInfo `lines`; return it."""
    result['state'] = 'failed'
    result['debugInfo'].extend(lines)
    return result


def run_command_phase(result, command, outputs_dir, stream_names, streams_dir):
    """Run the command with its stdout/stderr in files (named in `result`, whole, for the controller) and record
    return code and duration in `result`. Returns problems."""
    os.makedirs(outputs_dir, exist_ok=True)
    os.makedirs(streams_dir, exist_ok=True)
    stream_paths = {}
    for stream in STREAM_TYPES:
        name = stream_names[stream]
        stream_paths[stream] = os.path.join(outputs_dir, name) if name else os.path.join(streams_dir, stream)
    result[STREAM_FILES_KEY] = stream_paths
    return_code, problem, duration_seconds = run_experiment_command(command, outputs_dir, stream_paths['stdout'],
                                                                    stream_paths['stderr'])
    result['process'] = {'returnCode': return_code, 'durationSeconds': round(duration_seconds, 3)}
    result[STREAM_DATA_KEY] = small_streams(stream_paths)
    if problem is not None:
        return [problem]
    if return_code != 0:
        stderr_tail = decode_output_tail(read_file_tail_bytes(stream_paths['stderr'], COMMAND_STDERR_TAIL_BYTES),
                                         COMMAND_STDERR_TAIL_BYTES)
        return command_failure_lines(return_code, stderr_tail)
    return []


def run_batch(job, agent_root, runner, result):
    """Run one batch described by `job`, filling in `result` (see new_result) as it goes; return it.

    Problems with the job or any phase end in state failed with debugInfo lines; only unexpected exceptions (and
    SIGTERM) propagate, leaving what was done so far in `result`.
    """
    options = read_options(job)
    inputs_dir = os.path.join(agent_root, 'inputs')
    outputs_dir = os.path.join(agent_root, 'outputs')
    mounted_paths = []
    try:
        cli_description = job.get('cli')
        if not isinstance(cli_description, dict):
            raise JobError('the job has no cli')
        job_inputs = job.get('inputs') or {}
        if not isinstance(job_inputs, dict):
            raise JobError('the job inputs must be a map')
        input_paths = compute_input_paths(job_inputs, inputs_dir)
        local_inputs = localize_inputs(job_inputs, input_paths)
        result['inputs'] = describe_inputs_for_result(local_inputs, {})
        input_transfers = plan_input_transfers(job_inputs, input_paths)
        result['command'] = build_command_line(cli_description, local_inputs)
        stream_names = stream_file_names(cli_description, local_inputs)
        output_globs = plan_output_globs(cli_description, local_inputs, stream_names)
        output_connectors = plan_output_connectors(cli_description, job.get('outputs'))

        problems = check_connectors(input_transfers + output_connectors, options, runner, result)
        if problems:
            return fail(result, problems)
        problems = receive_inputs(input_transfers, options, runner, mounted_paths)
        if problems:
            return fail(result, problems)
        result['inputs'] = describe_inputs_for_result(local_inputs, input_sizes_bytes(local_inputs))

        problems = run_command_phase(result, result['command'], outputs_dir, stream_names,
                                     os.path.join(agent_root, STREAMS_DIR_NAME))
        if problems:
            return fail(result, problems)

        output_matches = find_output_matches(output_globs, outputs_dir)
        selected_paths, problems = select_output_paths(cli_description, output_matches)
        result['outputs'] = describe_outputs_for_result(selected_paths, set())
        if problems:
            return fail(result, problems)
        problems = send_outputs(output_connectors, selected_paths, options, runner)
        if problems:
            return fail(result, problems)
        sent_keys = set(planned['key'] for planned in output_connectors)
        result['outputs'] = describe_outputs_for_result(selected_paths, sent_keys)
        result['state'] = 'succeeded'
        return result
    except JobError as error:
        return fail(result, error.lines)
    finally:
        if mounted_paths:
            unmount_problems = unmount_inputs(mounted_paths, options, runner)
            if result['state'] == 'failed':
                result['debugInfo'].extend(unmount_problems)


def read_and_delete_job_file(job_file_path):
    """Read the job file, delete it at once (it holds secrets), then parse it. Raises JobError."""
    try:
        with open(job_file_path, 'rb') as handle:
            data_bytes = handle.read()
    except OSError as error:
        raise JobError('cannot read the job file {}: {}'.format(job_file_path, error.strerror or error))
    try:
        os.remove(job_file_path)
    except OSError as error:
        sys.stderr.write('cc-agent: could not delete the job file {}: {}\n'.format(job_file_path, error))
    try:
        job = json.loads(data_bytes.decode('utf-8'))
    except ValueError as error:
        raise JobError('the job file is not valid JSON: {}'.format(error))
    if not isinstance(job, dict):
        raise JobError('the job file must hold a JSON object')
    return job


def internal_error_lines(error):
    """debugInfo lines for an unexpected exception: its type, message and where it happened (no locals)."""
    lines = ['internal agent error: {}: {}'.format(type(error).__name__, error)]
    frames = traceback.extract_tb(sys.exc_info()[2])[-3:]
    for frame in frames:
        lines.append('  at {}:{} in {}'.format(os.path.basename(frame[0]), frame[1], frame[2]))
    return lines


def finish_result(result, secret_strings):
    """Final form of a result: debugInfo None on success, else redacted lines."""
    if result['state'] == 'succeeded':
        result['debugInfo'] = None
    else:
        result['debugInfo'] = redact_lines(result['debugInfo'] or ['the batch failed for an unknown reason'],
                                           secret_strings)
    return result


def reserve_stdout_for_result():
    """Keep the real stdout for the one result document; route fd 1 and sys.stdout to stderr from now on."""
    sys.stdout.flush()
    result_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return result_fd


def write_result(result_fd, result):
    """Write the result as one ASCII JSON document (plus newline) to `result_fd`."""
    data_bytes = (json.dumps(result, ensure_ascii=True, sort_keys=True) + '\n').encode('ascii')
    while data_bytes:
        written_count = os.write(result_fd, data_bytes)
        data_bytes = data_bytes[written_count:]


def raise_agent_terminated(signal_number, frame):
    """SIGTERM handler: turn the signal into an exception so a failed result is still printed."""
    raise AgentTerminated('the agent was terminated by signal {}'.format(signal_number))


def main(argv):
    """Run the batch of the job file named in argv; print the result; return the process exit code."""
    result_fd = reserve_stdout_for_result()
    agent_root = os.environ.get(AGENT_ROOT_ENV_VAR) or DEFAULT_AGENT_ROOT
    job_file_path = argv[1] if len(argv) > 1 else os.path.join(agent_root, 'job.json')
    secret_strings = []
    result = new_result()
    private_dir = runner = None
    try:
        signal.signal(signal.SIGTERM, raise_agent_terminated)
        job = read_and_delete_job_file(job_file_path)
        secret_strings = collect_secret_strings(job)
        private_dir = tempfile.mkdtemp(prefix='cc-agent-')
        runner = ConnectorRunner(private_dir)
        run_batch(job, agent_root, runner, result)
    except JobError as error:
        fail(result, error.lines)
    except AgentTerminated as error:
        fail(result, [str(error)])
    except BaseException as error:  # never exit with a traceback only
        fail(result, internal_error_lines(error))
    finally:
        if runner is not None:
            runner.close()
        if private_dir is not None:
            shutil.rmtree(private_dir, ignore_errors=True)
    try:
        write_result(result_fd, finish_result(result, secret_strings))
    except Exception as error:
        sys.stderr.write('cc-agent: could not print the result: {}\n'.format(error))
        return 1
    return 0


if __name__ == '__main__' and sys.argv[1:2] == [FORK_SERVER_FLAG]:
    connector_entry = None
    try:
        serve_connector_forks(sys.argv[2], sys.argv[3])
    except ForkServerChild as child:
        connector_entry = child.entry
    if connector_entry is not None:  # a connector call: it ends as the launcher script would
        sys.exit(connector_entry())
elif __name__ == '__main__':
    exit_code = main(sys.argv)
    sys.stderr.flush()
    # do not wait for connector threads still running after SIGTERM
    os._exit(exit_code)
