"""A corpus of REDs that today's RED 9 ecosystem accepts: the documentation's examples and one RED per optional field.

Why: the agency must accept what faice 9.x and cc-agency 9.x users already have. The published RED 9 JSON schemas
(`schemas/`, taken unchanged from curious-containers/curious-containers.github.io, folder `schema/`, 2023-08-21) are
the reference: `published_schema_problems` checks a RED against them, so the corpus itself is checked too.

- `DOC_EXAMPLES`: the REDs in `docs/` (YAML), written from the documentation pages (RED format, container and
  execution engines);
- `OPTIONAL_FIELDS`: {name: (red, stored)}: the base RED plus one optional field of red-9.json or of an engine
  schema; `stored(experiment, batches)` reads the field back from what the broker keeps (None: not kept, e.g. the
  client's own login), so a test can check that it survived.
"""
import copy
import json
from pathlib import Path

import jsonschema
import yaml

HERE = Path(__file__).resolve().parent
SCHEMAS = HERE / 'schemas'
IMAGE = 'local/cc-test:1'


def _schema(name):
    return json.loads((SCHEMAS / name).read_text())


ENGINE_SCHEMAS = {
    ('container', 'docker'): 'red-9-engine-container-docker.json',
    ('container', 'nvidia-docker'): 'red-9-engine-container-docker.json',  # the seed-era name, same settings
    ('execution', 'ccagency'): 'red-9-engine-execution-ccagency.json',
    ('execution', 'ccfaice'): 'red-9-engine-execution-ccfaice.json',
}


def published_schema_problems(red):
    """The messages of the published schemas about this RED (empty: the ecosystem accepts it)."""
    problems = [e.message for e in jsonschema.Draft4Validator(_schema('red-9.json')).iter_errors(red)]
    for section in ('container', 'execution'):
        if section in red:
            engine = red[section]['engine']
            validator = jsonschema.Draft4Validator(_schema(ENGINE_SCHEMAS[(section, engine)]))
            problems.extend('{}.settings: {}'.format(section, e.message)
                            for e in validator.iter_errors(red[section]['settings']))
    return problems


def _property_names(schema, names):
    if isinstance(schema, dict):
        names.update(schema.get('properties') if isinstance(schema.get('properties'), dict) else ())
        for value in schema.values():
            _property_names(value, names)
    elif isinstance(schema, list):
        for value in schema:
            _property_names(value, names)
    return names


def schema_property_names():
    """Every property name that a published schema defines (of the RED, its engines, their auth)."""
    names = set()
    for path in SCHEMAS.glob('*.json'):
        _property_names(json.loads(path.read_text()), names)
    return names


def keys_used(value, names=None):
    """Every key that occurs in a RED."""
    names = set() if names is None else names
    if isinstance(value, dict):
        names.update(value)
        for child in value.values():
            keys_used(child, names)
    elif isinstance(value, list):
        for child in value:
            keys_used(child, names)
    return names


DOC_EXAMPLES = {path.stem: yaml.safe_load(path.read_text()) for path in sorted((HERE / 'docs').glob('*.yml'))}


def base(url='http://127.0.0.1:9'):
    """The smallest RED 9 with a file input and a file output (one batch in `batches`), every optional field out."""
    return {
        'redVersion': '9',
        'cli': {
            'cwlVersion': 'v1.0',
            'class': 'CommandLineTool',
            'baseCommand': ['python3', '-c'],
            'inputs': {
                'script': {'type': 'string', 'inputBinding': {'position': 0}},
                'infile': {'type': 'File', 'inputBinding': {'position': 1}},
            },
            'outputs': {'result': {'type': 'File', 'outputBinding': {'glob': 'result.txt'}}},
        },
        'container': {'engine': 'docker', 'settings': {'image': {'url': IMAGE}, 'ram': 256}},
        'batches': [{
            'inputs': {
                'script': "import sys, shutil; shutil.copy(sys.argv[1], 'result.txt')",
                'infile': {'class': 'File', 'connector': {'command': 'red-connector-http',
                                                          'access': {'url': url + '/files/in.txt'}}},
            },
            'outputs': {
                'result': {'class': 'File', 'connector': {'command': 'red-connector-http',
                                                          'access': {'url': url + '/uploads/out.txt',
                                                                     'method': 'PUT'}}},
            },
        }],
    }


def _batch0(batches):
    return batches[0]


def _settings(experiment):
    return experiment['container']['settings']


def _set(path, value):
    """A change that sets red[path...] = value (path: keys and indexes)."""
    def change(red):
        node = red
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return change


def _single_batch_form(red):
    batch = red.pop('batches')[0]
    red['inputs'] = batch['inputs']


def _single_batch_form_with_outputs(red):
    batch = red.pop('batches')[0]
    red.update(inputs=batch['inputs'], outputs=batch['outputs'])


def _stdout_output(red):
    red['cli']['stdout'] = 'out.log'
    red['cli']['outputs']['log'] = {'type': 'stdout'}
    red['batches'][0]['outputs']['log'] = {'class': 'stdout', 'connector': {
        'command': 'red-connector-http', 'access': {'url': 'http://127.0.0.1:9/uploads/log.txt', 'method': 'PUT'}}}


def _stderr_output(red):
    red['cli']['stderr'] = 'err.log'
    red['cli']['outputs']['errors'] = {'type': 'stderr'}
    red['batches'][0]['outputs']['errors'] = {'class': 'stderr', 'connector': {
        'command': 'red-connector-http', 'access': {'url': 'http://127.0.0.1:9/uploads/err.txt', 'method': 'PUT'}}}


def _directory_input(red, **extra):
    red['cli']['inputs']['indir'] = {'type': 'Directory?', 'inputBinding': {'prefix': '--dir'}}
    red['batches'][0]['inputs']['indir'] = dict({'class': 'Directory', 'connector': {
        'command': 'red-connector-http', 'access': {'url': 'http://127.0.0.1:9/dir/'}}}, **extra)


def _directory_output(red):
    red['cli']['outputs']['outdir'] = {'type': 'Directory?', 'outputBinding': {'glob': 'outdir'}}
    red['batches'][0]['outputs']['outdir'] = {'class': 'Directory', 'listing': [{'class': 'File', 'basename': 'a'}],
                                              'doc': 'results', 'connector': {
                                                  'command': 'red-connector-http',
                                                  'access': {'url': 'http://127.0.0.1:9/up/', 'method': 'PUT'}}}


def _array_input(red):
    red['cli']['inputs']['words'] = {'type': 'string[]', 'inputBinding': {'prefix': '-w', 'itemSeparator': ','}}
    red['batches'][0]['inputs']['words'] = ['a', 'b']


def _typed_input(type_name, value):
    def change(red):
        red['cli']['inputs']['extra'] = {'type': type_name, 'inputBinding': {'prefix': '--extra'}}
        red['batches'][0]['inputs']['extra'] = value
    return change


LISTING = [{'class': 'File', 'basename': 'a.txt', 'checksum': 'sha1$' + '0' * 40, 'size': 3},
           {'class': 'Directory', 'basename': 'sub', 'listing': [{'class': 'File', 'basename': 'b.txt'}]}]
INFILE = ('batches', 0, 'inputs', 'infile')
OUTFILE = ('batches', 0, 'outputs', 'result')
AUTH = {'username': 'registry-user', 'password': 'registry-pw'}


def _in(batches):
    return _batch0(batches)['inputs']


def _out(batches):
    return _batch0(batches)['outputs']


# name: (change of the base RED, stored(experiment, batches) -> the field as the broker keeps it, expected value)
_CHANGES = {
    # red-9.json, top level
    'doc': (_set(('doc',), 'an experiment'), lambda e, b: e['doc'], 'an experiment'),
    'single-batch-form': (_single_batch_form, lambda e, b: b[0]['outputs'], {}),
    'single-batch-form-with-outputs': (_single_batch_form_with_outputs, lambda e, b: sorted(b[0]['outputs']),
                                       ['result']),
    'batch-without-outputs': (lambda r: r['batches'][0].pop('outputs'), lambda e, b: b[0]['outputs'], {}),
    # a batch's doc is accepted; a batch document keeps only inputs and outputs
    'batch-doc': (_set(('batches', 0, 'doc'), 'first batch'), lambda e, b: 'doc' in b[0], False),
    # cli
    'cli-doc': (_set(('cli', 'doc'), 'copies a file'), lambda e, b: e['cli']['doc'], 'copies a file'),
    'cli-baseCommand-string': (_set(('cli', 'baseCommand'), 'python3'), lambda e, b: e['cli']['baseCommand'],
                               'python3'),
    'cli-baseCommand-null': (_set(('cli', 'baseCommand'), None), lambda e, b: e['cli']['baseCommand'], None),
    'cli-baseCommand-absent': (lambda r: r['cli'].pop('baseCommand'), lambda e, b: 'baseCommand' in e['cli'],
                               False),
    'cli-stdout': (_stdout_output, lambda e, b: e['cli']['stdout'], 'out.log'),
    'cli-stderr': (_stderr_output, lambda e, b: e['cli']['stderr'], 'err.log'),
    'cli-input-doc': (_set(('cli', 'inputs', 'script', 'doc'), 'the program'),
                      lambda e, b: e['cli']['inputs']['script']['doc'], 'the program'),
    'cli-input-prefix-separate': (_set(('cli', 'inputs', 'infile', 'inputBinding'), {'prefix': '-i', 'separate':
                                                                                      False, 'position': 1}),
                                  lambda e, b: e['cli']['inputs']['infile']['inputBinding']['separate'], False),
    'cli-input-itemSeparator': (_array_input, lambda e, b: e['cli']['inputs']['words']['inputBinding']
                                ['itemSeparator'], ','),
    'cli-input-no-position': (_set(('cli', 'inputs', 'infile', 'inputBinding'), {'prefix': '--in'}),
                              lambda e, b: e['cli']['inputs']['infile']['inputBinding'], {'prefix': '--in'}),
    'cli-output-doc': (_set(('cli', 'outputs', 'result', 'doc'), 'the copy'),
                       lambda e, b: e['cli']['outputs']['result']['doc'], 'the copy'),
    'cli-output-optional': (_set(('cli', 'outputs', 'result', 'type'), 'File?'),
                            lambda e, b: e['cli']['outputs']['result']['type'], 'File?'),
    'input-int': (_typed_input('int', 7), lambda e, b: _in(b)['extra'], 7),
    'input-float': (_typed_input('double', 0.5), lambda e, b: _in(b)['extra'], 0.5),
    'input-boolean': (_typed_input('boolean', True), lambda e, b: _in(b)['extra'], True),
    'input-optional-absent': (lambda r: _typed_input('long?', 1)(r) or r['batches'][0]['inputs'].pop('extra'),
                              lambda e, b: e['cli']['inputs']['extra']['type'], 'long?'),
    # connector
    'connector-mount': (_set(INFILE + ('connector', 'mount'), False), lambda e, b: _in(b)['infile']['connector']
                        ['mount'], False),
    'connector-doc': (_set(INFILE + ('connector', 'doc'), 'over HTTP'),
                      lambda e, b: _in(b)['infile']['connector']['doc'], 'over HTTP'),
    # inputFile
    'inputFile-basename': (_set(INFILE + ('basename',), 'data.txt'), lambda e, b: _in(b)['infile']['basename'],
                           'data.txt'),
    'inputFile-dirname': (_set(INFILE + ('dirname',), 'data'), lambda e, b: _in(b)['infile']['dirname'], 'data'),
    'inputFile-checksum': (_set(INFILE + ('checksum',), 'sha1$' + 'a' * 40),
                           lambda e, b: _in(b)['infile']['checksum'], 'sha1$' + 'a' * 40),
    'inputFile-size': (_set(INFILE + ('size',), 1024), lambda e, b: _in(b)['infile']['size'], 1024),
    'inputFile-doc': (_set(INFILE + ('doc',), 'the input'), lambda e, b: _in(b)['infile']['doc'], 'the input'),
    # inputDirectory and listings
    'inputDirectory': (_directory_input, lambda e, b: _in(b)['indir']['class'], 'Directory'),
    'inputDirectory-basename-doc': (lambda r: _directory_input(r, basename='d', doc='a directory'),
                                    lambda e, b: _in(b)['indir']['doc'], 'a directory'),
    'inputDirectory-listing': (lambda r: _directory_input(r, listing=LISTING),
                               lambda e, b: _in(b)['indir']['listing'], LISTING),
    'input-File-array': (
        lambda r: (r['cli']['inputs'].update(more={'type': 'File[]', 'inputBinding': {'prefix': '--more'}}),
                   r['batches'][0]['inputs'].update(more=[copy.deepcopy(r['batches'][0]['inputs']['infile'])])),
        lambda e, b: len(_in(b)['more']), 1),
    # outputFile / outputDirectory
    'outputFile-checksum-size-doc': (
        lambda r: r['batches'][0]['outputs']['result'].update(checksum='sha1$' + 'b' * 40, size=5, doc='copy'),
        lambda e, b: (_out(b)['result']['size'], _out(b)['result']['doc']), (5, 'copy')),
    'output-stdout-class': (_stdout_output, lambda e, b: _out(b)['log']['class'], 'stdout'),
    'output-stderr-class': (_stderr_output, lambda e, b: _out(b)['errors']['class'], 'stderr'),
    'outputDirectory': (_directory_output, lambda e, b: _out(b)['outdir']['listing'],
                        [{'class': 'File', 'basename': 'a'}]),
    # container (engine section and red-9-engine-container-docker.json)
    'container-doc': (_set(('container', 'doc'), 'docker'), lambda e, b: _settings(e)['image']['url'], IMAGE),
    'container-version': (_set(('container', 'settings', 'version'), '20.10'), lambda e, b: _settings(e)['version'],
                          '20.10'),
    'container-image-source': (_set(('container', 'settings', 'image', 'source'), {'url': 'https://git.example/x'}),
                               lambda e, b: _settings(e)['image']['source'], {'url': 'https://git.example/x'}),
    'container-image-auth': (_set(('container', 'settings', 'image', 'auth'), dict(AUTH)),
                             lambda e, b: _settings(e)['image']['auth']['username'], 'registry-user'),
    'container-image-auth-protected-username': (
        _set(('container', 'settings', 'image', 'auth'), {'_username': 'u', 'password': 'p'}),
        lambda e, b: sorted(_settings(e)['image']['auth']), ['_username', 'password']),
    'container-image-auth-protected-password': (
        _set(('container', 'settings', 'image', 'auth'), {'username': 'u', '_password': 'p'}),
        lambda e, b: sorted(_settings(e)['image']['auth']), ['_password', 'username']),
    'container-image-auth-protected-both': (
        _set(('container', 'settings', 'image', 'auth'), {'_username': 'u', '_password': 'p'}),
        lambda e, b: sorted(_settings(e)['image']['auth']), ['_password', '_username']),
    'container-ram-absent': (lambda r: r['container']['settings'].pop('ram'), lambda e, b: e['requirements']['ramMiB'],
                             1024),
    'container-gpus-count': (_set(('container', 'settings', 'gpus'), {'vendor': 'nvidia', 'count': 2}),
                             lambda e, b: e['requirements']['gpuVramMiB'], [0, 0]),
    'container-gpus-devices': (_set(('container', 'settings', 'gpus'), {'vendor': 'nvidia', 'devices': [
        {'vramMin': 4096}, {}]}), lambda e, b: e['requirements']['gpuVramMiB'], [4096, 0]),
    'container-engine-nvidia-docker': (
        lambda r: r['container'].update(engine='nvidia-docker', settings=dict(
            r['container']['settings'], gpus={'vendor': 'nvidia', 'count': 1})),
        lambda e, b: (e['container']['engine'], e['requirements']['gpuVramMiB']), ('docker', [0])),
    # execution (engine section and red-9-engine-execution-*.json)
    'execution-ccagency-empty': (_set(('execution',), {'engine': 'ccagency', 'settings': {}}),
                                 lambda e, b: e['execution']['settings'], {}),
    'execution-ccagency-access': (
        _set(('execution',), {'engine': 'ccagency', 'doc': 'where', 'settings': {'access': {
            'url': 'https://example.com/cc', 'auth': {'username': 'me', 'password': 'my-login'}}}}),
        lambda e, b: e['execution']['settings'], {}),
    'execution-ccagency-access-protected': (
        _set(('execution',), {'engine': 'ccagency', 'settings': {'access': {
            'url': 'https://example.com/cc', 'auth': {'_username': 'me', '_password': 'my-login'}}}}),
        lambda e, b: e['execution']['settings'], {}),
    'execution-ccagency-batchConcurrencyLimit': (
        _set(('execution',), {'engine': 'ccagency', 'settings': {'batchConcurrencyLimit': 8}}),
        lambda e, b: e['execution']['settings']['batchConcurrencyLimit'], 8),
    'execution-ccfaice': (_set(('execution',), {'engine': 'ccfaice', 'settings': {}}),
                          lambda e, b: e['execution']['settings'], {}),
}


def optional_field_reds(url='http://127.0.0.1:9'):
    """{name: (red, stored, expected)}: a fresh RED per optional field (its connectors on `url`)."""
    reds = {}
    for name, (change, stored, expected) in _CHANGES.items():
        red = base(url)
        change(red)
        reds[name] = (red, stored, expected)
    return reds


OPTIONAL_FIELDS = optional_field_reds()
