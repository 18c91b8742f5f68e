"""Pure parts of the container-side agent: command line, types, input paths, globs, outputs, redaction."""

import pytest

from cc_agency.agent import ccagent


def local_file(path):
    return ccagent.path_properties('File', path)


def cli_with(inputs, base_command='tool'):
    return {'cwlVersion': 'v1.0', 'class': 'CommandLineTool', 'baseCommand': base_command, 'inputs': inputs,
            'outputs': {}}


COMMAND_LINE_CASES = [
    # (name, cli inputs, local inputs, expected argv after the base command)
    ('positions then key names',
     {'b': {'type': 'string', 'inputBinding': {'position': 1}},
      'a': {'type': 'string', 'inputBinding': {'position': 1}},
      'c': {'type': 'string', 'inputBinding': {'position': 0}},
      'd': {'type': 'string', 'inputBinding': {}}},
     {'a': 'A', 'b': 'B', 'c': 'C', 'd': 'D'},
     ['C', 'D', 'A', 'B']),
    ('negative position first',
     {'x': {'type': 'int', 'inputBinding': {'position': -1}}, 'y': {'type': 'int', 'inputBinding': {}}},
     {'x': 1, 'y': 2},
     ['1', '2']),
    ('prefix separate',
     {'n': {'type': 'int', 'inputBinding': {'prefix': '-n'}}},
     {'n': 3},
     ['-n', '3']),
    ('prefix not separate',
     {'n': {'type': 'long', 'inputBinding': {'prefix': '--n=', 'separate': False}}},
     {'n': 12345678901},
     ['--n=12345678901']),
    ('floats via str',
     {'f': {'type': 'double', 'inputBinding': {'prefix': '-f'}}, 'g': {'type': 'float', 'inputBinding': {}}},
     {'f': 0.5, 'g': 2},
     ['-f', '0.5', '2']),
    ('boolean true adds only the prefix',
     {'v': {'type': 'boolean', 'inputBinding': {'prefix': '--verbose'}}},
     {'v': True},
     ['--verbose']),
    ('boolean false adds nothing',
     {'v': {'type': 'boolean', 'inputBinding': {'prefix': '--verbose'}}},
     {'v': False},
     []),
    ('boolean true without prefix adds nothing',
     {'v': {'type': 'boolean', 'inputBinding': {}}},
     {'v': True},
     []),
    ('optional null adds nothing',
     {'o': {'type': 'string?', 'inputBinding': {'prefix': '-o'}}, 'p': {'type': 'File?', 'inputBinding': {}}},
     {'o': None},
     []),
    ('optional union form',
     {'o': {'type': ['null', 'int'], 'inputBinding': {'prefix': '-o'}}},
     {},
     []),
    ('input without binding adds nothing',
     {'quiet': {'type': 'string'}},
     {'quiet': 'x'},
     []),
    ('string with spaces stays one argument',
     {'s': {'type': 'string', 'inputBinding': {}}},
     {'s': 'a b; rm -rf /'},
     ['a b; rm -rf /']),
    ('array with prefix once',
     {'xs': {'type': 'string[]', 'inputBinding': {'prefix': '-A'}}},
     {'xs': ['one', 'two', 'three']},
     ['-A', 'one', 'two', 'three']),
    ('array without prefix',
     {'xs': {'type': 'int[]', 'inputBinding': {}}},
     {'xs': [1, 2]},
     ['1', '2']),
    ('array itemSeparator and separate false',
     {'xs': {'type': 'string[]', 'inputBinding': {'prefix': '-C=', 'itemSeparator': ',', 'separate': False}}},
     {'xs': ['seven', 'eight', 'nine']},
     ['-C=seven,eight,nine']),
    ('array itemSeparator separate',
     {'xs': {'type': 'int[]', 'inputBinding': {'prefix': '-C', 'itemSeparator': ','}}},
     {'xs': [1, 2]},
     ['-C', '1,2']),
    ('long form array with item binding',
     {'xs': {'type': {'type': 'array', 'items': 'string', 'inputBinding': {'prefix': '-B=', 'separate': False}},
             'inputBinding': {'position': 2}}},
     {'xs': ['four', 'five']},
     ['-B=four', '-B=five']),
    ('empty array adds nothing',
     {'xs': {'type': 'string[]', 'inputBinding': {'prefix': '-A'}}},
     {'xs': []},
     []),
    ('optional array missing',
     {'xs': {'type': 'File[]?', 'inputBinding': {'prefix': '-A'}}},
     {},
     []),
    ('file gives its local path',
     {'f': {'type': 'File', 'inputBinding': {'prefix': '--in'}}},
     {'f': local_file('/cc/inputs/f/data.csv')},
     ['--in', '/cc/inputs/f/data.csv']),
    ('directory gives its local path',
     {'d': {'type': 'Directory', 'inputBinding': {}}},
     {'d': ccagent.path_properties('Directory', '/cc/inputs/d/dir')},
     ['/cc/inputs/d/dir']),
    ('array of files',
     {'fs': {'type': 'File[]', 'inputBinding': {'position': 1}}},
     {'fs': [local_file('/cc/inputs/fs/0/a'), local_file('/cc/inputs/fs/1/b')]},
     ['/cc/inputs/fs/0/a', '/cc/inputs/fs/1/b']),
    ('default used when missing',
     {'n': {'type': 'int', 'default': 7, 'inputBinding': {'prefix': '-n'}}},
     {},
     ['-n', '7']),
    ('short type form and list parameters',
     [{'id': '#x', 'type': 'string', 'inputBinding': {'position': 1}}, {'id': 'y', 'type': 'string'}],
     {'x': 'X', 'y': 'Y'},
     ['X']),
]


@pytest.mark.parametrize('name,cli_inputs,local_inputs,expected', COMMAND_LINE_CASES,
                         ids=[case[0] for case in COMMAND_LINE_CASES])
def test_build_command_line(name, cli_inputs, local_inputs, expected):
    assert ccagent.build_command_line(cli_with(cli_inputs), local_inputs) == ['tool'] + expected


@pytest.mark.parametrize('base_command,expected', [
    ('echo', ['echo']),
    (['python3', '-m', 'tool'], ['python3', '-m', 'tool']),
    (None, []),
])
def test_base_command_forms(base_command, expected):
    cli = cli_with({'x': {'type': 'string', 'inputBinding': {}}}, base_command=base_command)
    assert ccagent.build_command_line(cli, {'x': 'X'}) == expected + ['X']


def test_base_command_missing_key():
    cli = {'inputs': {'x': {'type': 'string', 'inputBinding': {}}}, 'outputs': {}}
    assert ccagent.build_command_line(cli, {'x': 'X'}) == ['X']


@pytest.mark.parametrize('cli_inputs,local_inputs,message', [
    ({'x': {'type': 'string', 'inputBinding': {}}}, {}, "input 'x' is required but missing"),
    ({'x': {'type': 'File', 'inputBinding': {}}}, {'x': None}, "input 'x' is required but missing"),
    ({'x': {'type': 'string'}}, {}, "input 'x' is required but missing"),
    ({'x': {'type': 'int', 'inputBinding': {}}}, {'x': 'three'}, "input 'x' must be of type int"),
    ({'x': {'type': 'int', 'inputBinding': {}}}, {'x': True}, "input 'x' must be of type int"),
    ({'x': {'type': 'boolean', 'inputBinding': {}}}, {'x': 'true'}, "input 'x' must be of type boolean"),
    ({'x': {'type': 'string[]', 'inputBinding': {}}}, {'x': 'a'}, "input 'x' must be a list"),
    ({'x': {'type': 'File', 'inputBinding': {}}}, {'x': 'a.txt'}, "input 'x' must be of type File"),
    ({'x': {'type': 'Any', 'inputBinding': {}}}, {'x': 1}, 'unsupported CWL type'),
    ({'x': {'type': 'int', 'inputBinding': {'position': '1'}}}, {'x': 1}, 'position must be an integer'),
])
def test_build_command_line_errors(cli_inputs, local_inputs, message):
    with pytest.raises(ccagent.CommandLineError) as raised:
        ccagent.build_command_line(cli_with(cli_inputs), local_inputs)
    assert message in str(raised.value)


def test_build_command_line_reports_every_missing_input():
    cli = cli_with({'a': {'type': 'string', 'inputBinding': {}}, 'b': {'type': 'int', 'inputBinding': {}}})
    with pytest.raises(ccagent.CommandLineError) as raised:
        ccagent.build_command_line(cli, {})
    assert len(raised.value.lines) == 2


def test_empty_command_line_is_an_error():
    with pytest.raises(ccagent.CommandLineError):
        ccagent.build_command_line(cli_with({}, base_command=None), {})


@pytest.mark.parametrize('type_spec,expected', [
    ('File', ('File', False, False)),
    ('File?', ('File', False, True)),
    ('string[]', ('string', True, False)),
    ('int[]?', ('int', True, True)),
    (['null', 'Directory'], ('Directory', False, True)),
    ({'type': 'array', 'items': 'double'}, ('double', True, False)),
    (['null', {'type': 'array', 'items': 'File'}], ('File', True, True)),
    ('stdout', ('stdout', False, False)),
])
def test_parse_cwl_type(type_spec, expected):
    parsed = ccagent.parse_cwl_type(type_spec)
    assert (parsed['base'], parsed['isArray'], parsed['isOptional']) == expected


@pytest.mark.parametrize('type_spec', ['Any', 'File[][]', ['int', 'string'], {'type': 'record'}, 3, None])
def test_parse_cwl_type_rejects(type_spec):
    with pytest.raises(ccagent.JobError):
        ccagent.parse_cwl_type(type_spec)


# ---- input paths -----------------------------------------------------------------------------------------------------

def remote_file(**extra):
    value = {'class': 'File', 'connector': {'command': 'con', 'access': {'url': 'http://x/y'}}}
    value.update(extra)
    return value


def test_compute_input_paths_layout():
    job_inputs = {
        'data': remote_file(basename='data.csv'),
        'nameless': remote_file(),
        'many': [remote_file(basename='a.txt'), remote_file(basename='a.txt')],
        'dir': {'class': 'Directory', 'basename': 'd', 'connector': {'command': 'con', 'access': {}}},
        'word': 'hello',
        'words': ['x', 'y'],
    }
    paths = ccagent.compute_input_paths(job_inputs, '/cc/inputs')
    assert paths == {
        'data': '/cc/inputs/data/data.csv',
        'nameless': '/cc/inputs/nameless/nameless',
        'many': ['/cc/inputs/many/0/a.txt', '/cc/inputs/many/1/a.txt'],
        'dir': '/cc/inputs/dir/d',
    }


def test_compute_input_paths_unique_for_unsafe_keys():
    job_inputs = {'a b': remote_file(basename='f'), 'a_b': remote_file(basename='f'), '..': remote_file()}
    paths = ccagent.compute_input_paths(job_inputs, '/in')
    assert len(set(paths.values())) == 3
    for path in paths.values():
        assert path.startswith('/in/') and '/../' not in path and '/./' not in path


@pytest.mark.parametrize('basename', ['../evil', 'a/b', '..', '.', ''])
def test_compute_input_paths_rejects_bad_basename(basename):
    with pytest.raises(ccagent.JobError):
        ccagent.compute_input_paths({'x': remote_file(basename=basename)}, '/in')


def test_localize_inputs_drops_connectors():
    job_inputs = {'f': remote_file(basename='a.tar.gz'), 'n': 3, 'fs': [remote_file(basename='b.txt')]}
    paths = ccagent.compute_input_paths(job_inputs, '/in')
    local = ccagent.localize_inputs(job_inputs, paths)
    assert local['n'] == 3
    assert local['f'] == {'class': 'File', 'path': '/in/f/a.tar.gz', 'basename': 'a.tar.gz', 'dirname': '/in/f',
                          'nameroot': 'a.tar', 'nameext': '.gz'}
    assert local['fs'][0]['path'] == '/in/fs/0/b.txt'
    assert 'connector' not in str(local)


def test_plan_input_transfers():
    job_inputs = {'f': remote_file(basename='a', size=3, checksum='sha1$ABC'),
                  'd': {'class': 'Directory', 'listing': [],
                        'connector': {'command': 'con', 'access': {'u': 1}, 'mount': True}}}
    paths = ccagent.compute_input_paths(job_inputs, '/in')
    transfers = ccagent.plan_input_transfers(job_inputs, paths)
    assert [(t['label'], t['class'], t['mount'], t['path']) for t in transfers] == [
        ("input 'd'", 'Directory', True, '/in/d/d'), ("input 'f'", 'File', False, '/in/f/a')]
    assert [ccagent.transfer_modes(t) for t in transfers] == [
        ('mount-dir-validate', 'mount-dir'), ('receive-file-validate', 'receive-file')]


@pytest.mark.parametrize('value,message', [
    ({'class': 'File'}, 'has no connector'),
    ({'class': 'File', 'connector': {'access': {}}}, 'connector.command'),
    ({'class': 'File', 'connector': {'command': 'c', 'access': 'x'}}, 'connector.access'),
    ({'class': 'File', 'connector': {'command': 'c', 'access': {}, 'mount': True}}, 'only Directory'),
    ({'class': 'File', 'checksum': 'abc', 'connector': {'command': 'c', 'access': {}}}, 'checksum'),
])
def test_plan_input_transfers_rejects(value, message):
    with pytest.raises(ccagent.JobError) as raised:
        ccagent.plan_input_transfers({'x': value}, ccagent.compute_input_paths({'x': value}, '/in'))
    assert message in str(raised.value)


def test_connector_argv():
    transfer = {'label': 'l', 'direction': 'input', 'class': 'Directory', 'command': 'con', 'access': {},
                'mount': False, 'path': '/in/d/d', 'listing': [{'class': 'File', 'basename': 'x'}]}
    invocation = ccagent.connector_invocation(transfer, 'receive-dir')
    assert ccagent.connector_argv(invocation, '/p/a.json', '/p/l.json') == [
        'con', 'receive-dir', '/p/a.json', '/in/d/d', '--listing', '/p/l.json']
    validate = ccagent.connector_invocation(transfer, 'receive-dir-validate')
    assert validate['path'] is None and validate['listing'] is not None
    transfer['listing'] = None
    file_invocation = ccagent.connector_invocation(dict(transfer, **{'class': 'File'}), 'receive-file')
    assert ccagent.connector_argv(file_invocation, '/p/a.json', None) == ['con', 'receive-file', '/p/a.json',
                                                                           '/in/d/d']


def test_connector_check_invocations_respect_options():
    transfers = [dict(direction='input', label='a', command='c1', access={}, mount=False, path='/p', listing=None,
                      **{'class': 'File'}),
                 dict(direction='output', label='b', command='c1', access={}, mount=False, path=None, listing=None,
                      **{'class': 'Directory'})]
    options = dict(ccagent.DEFAULT_OPTIONS)
    modes = [i['mode'] for i in ccagent.connector_check_invocations(transfers, options)]
    assert modes == ['cli-version', 'receive-file-validate', 'send-dir-validate']
    options['validateConnectors'] = False
    assert [i['mode'] for i in ccagent.connector_check_invocations(transfers, options)] == ['cli-version']
    options['checkConnectorVersions'] = False
    assert ccagent.connector_check_invocations(transfers, options) == []


# ---- globs and outputs -----------------------------------------------------------------------------------------------

GLOB_CASES = [
    ('out.txt', 'out.txt'),
    ('$(inputs.f.basename).out', 'a.tar.gz.out'),
    ('$(inputs.f.nameroot).csv', 'a.tar.csv'),
    ('x$(inputs.f.nameext)', 'x.gz'),
    ('$(inputs.f.dirname)/y', '/in/f/y'),
    ('$(inputs.f.path)', '/in/f/a.tar.gz'),
    ('$(inputs.name)-$(inputs.n).txt', 'res-3.txt'),
    ('*.txt', '*.txt'),
]


@pytest.mark.parametrize('template,expected', GLOB_CASES)
def test_resolve_parameter_references(template, expected):
    local_inputs = {'f': local_file('/in/f/a.tar.gz'), 'name': 'res', 'n': 3}
    assert ccagent.resolve_parameter_references(template, local_inputs) == expected


@pytest.mark.parametrize('template', ['$(inputs.missing.basename)', '$(inputs.f.size)', '$(inputs.name.basename)',
                                      '$(inputs.f)', '$(runtime.outdir)/x', '${return "x"}'])
def test_resolve_parameter_references_rejects(template):
    with pytest.raises(ccagent.JobError):
        ccagent.resolve_parameter_references(template, {'f': local_file('/in/f/a'), 'name': 'res'})


def cli_with_outputs(outputs, **extra):
    cli = {'baseCommand': 'tool', 'inputs': {}, 'outputs': outputs}
    cli.update(extra)
    return cli


def test_stream_file_names():
    assert ccagent.stream_file_names(cli_with_outputs({}), {}) == {'stdout': None, 'stderr': None}
    assert ccagent.stream_file_names(cli_with_outputs({'o': {'type': 'stdout'}}), {}) == {
        'stdout': ccagent.DEFAULT_STREAM_FILE_NAMES['stdout'], 'stderr': None}
    named = cli_with_outputs({'o': {'type': 'stdout'}}, stdout='$(inputs.f.nameroot).log', stderr='err.txt')
    assert ccagent.stream_file_names(named, {'f': local_file('/in/f/a.csv')}) == {'stdout': 'a.log',
                                                                                   'stderr': 'err.txt'}
    with pytest.raises(ccagent.JobError):
        ccagent.stream_file_names(cli_with_outputs({}, stdout='../x'), {})


def test_plan_output_globs():
    cli = cli_with_outputs({'a': {'type': 'File', 'outputBinding': {'glob': '$(inputs.f.nameroot).out'}},
                            'b': {'type': 'stdout'}, 'c': {'type': 'Directory?', 'outputBinding': {'glob': ['x', 'y']}}})
    names = ccagent.stream_file_names(cli, {})
    assert ccagent.plan_output_globs(cli, {'f': local_file('/in/f/a.csv')}, names) == {
        'a': ['a.out'], 'b': [ccagent.DEFAULT_STREAM_FILE_NAMES['stdout']], 'c': ['x', 'y']}
    with pytest.raises(ccagent.JobError):
        ccagent.plan_output_globs(cli_with_outputs({'a': {'type': 'File'}}), {}, names)
    with pytest.raises(ccagent.JobError):
        ccagent.plan_output_globs(cli_with_outputs({'a': {'type': 'string', 'outputBinding': {'glob': 'x'}}}), {},
                                  names)


def matches(*entries):
    return {'patterns': ['p*'], 'matches': [{'path': p, 'class': c} for p, c in entries]}


SELECT_CASES = [
    ('exactly one file', 'File', [('/o/a', 'File')], '/o/a', None),
    ('none required', 'File', [], None, 'matched no path'),
    ('none optional', 'File?', [], None, None),
    ('two ambiguous', 'File', [('/o/a', 'File'), ('/o/b', 'File')], None, 'matched 2 paths'),
    ('two ambiguous even if optional', 'File?', [('/o/a', 'File'), ('/o/b', 'File')], None, 'matched 2 paths'),
    ('directory for file', 'File', [('/o/a', 'Directory')], None, 'not a File'),
    ('directory', 'Directory', [('/o/d', 'Directory')], '/o/d', None),
    ('stdout', 'stdout', [('/o/s', 'File')], '/o/s', None),
    ('array takes all', 'File[]', [('/o/a', 'File'), ('/o/b', 'File')], ['/o/a', '/o/b'], None),
]


@pytest.mark.parametrize('name,type_spec,found,expected_path,problem', SELECT_CASES,
                         ids=[case[0] for case in SELECT_CASES])
def test_select_output_paths(name, type_spec, found, expected_path, problem):
    cli = cli_with_outputs({'o': {'type': type_spec, 'outputBinding': {'glob': 'p*'}}})
    selected, problems = ccagent.select_output_paths(cli, {'o': matches(*found)})
    assert selected == {'o': expected_path}
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problem in problems[0] and "output 'o'" in problems[0]


def test_plan_output_connectors():
    cli = cli_with_outputs({'a': {'type': 'File', 'outputBinding': {'glob': 'a'}},
                            'd': {'type': 'Directory', 'outputBinding': {'glob': 'd'}},
                            's': {'type': 'stderr'},
                            'n': {'type': 'File', 'outputBinding': {'glob': 'n'}}})
    connector = {'command': 'con', 'access': {'url': 'u'}}
    planned = ccagent.plan_output_connectors(cli, {'a': {'class': 'File', 'connector': connector},
                                                   'd': {'class': 'Directory', 'connector': connector},
                                                   's': {'class': 'stderr', 'connector': connector},
                                                   'n': {'class': 'File'}})
    assert [(p['key'], ccagent.transfer_modes(p)[1]) for p in planned] == [
        ('a', 'send-file'), ('d', 'send-dir'), ('s', 'send-file')]
    with pytest.raises(ccagent.JobError):
        ccagent.plan_output_connectors(cli, {'zzz': {'class': 'File', 'connector': connector}})
    with pytest.raises(ccagent.JobError):
        ccagent.plan_output_connectors(cli, {'a': {'class': 'Directory', 'connector': connector}})


# ---- results, options, secrets ---------------------------------------------------------------------------------------

def test_decode_output_tail_keeps_the_end():
    assert ccagent.decode_output_tail(b'abcdef', 3) == 'def'
    assert ccagent.decode_output_tail(b'abc', 10) == 'abc'
    assert ccagent.decode_output_tail('ä'.encode('utf-8') + b'x', 2) == '\ufffdx'


def test_read_options_defaults_and_overrides():
    assert ccagent.read_options({}) == ccagent.DEFAULT_OPTIONS
    options = ccagent.read_options({'options': {'validateConnectors': False, 'maxParallelConnectors': 10,
                                                'checkConnectorVersions': 'no'}})
    assert options['validateConnectors'] is False
    assert options['maxParallelConnectors'] == 10
    assert options['checkConnectorVersions'] is True


def test_collect_and_redact_secrets():
    job = {'inputs': {'f': {'class': 'File', 'connector': {'command': 'c', 'access': {
        'url': 'http://host/x', 'auth': {'username': 'alice', 'password': 's3cr3t!'}, 'privateKey': 'KEYDATA'}}},
        'n': 3},
        'outputs': {'o': {'class': 'File', 'connector': {'command': 'c', 'access': {'token': 'tok-123'}}}}}
    secrets = ccagent.collect_secret_strings(job)
    assert set(secrets) == {'alice', 's3cr3t!', 'KEYDATA', 'tok-123'}
    lines = ccagent.redact_lines(['login alice:s3cr3t! failed at http://host/x', 'tok-123'], secrets)
    assert lines == ['login ********:******** failed at http://host/x', '********']


def test_connector_outcome_problems():
    invocation = {'label': "input 'f'", 'command': 'con', 'mode': 'receive-file'}
    ok = {'returnCode': 0, 'stdout': '', 'stderr': 'noise', 'error': None}
    assert ccagent.connector_outcome_problems(invocation, ok) == []
    failed = {'returnCode': 3, 'stdout': '', 'stderr': 'Traceback\nHTTPError: 404\n', 'error': None}
    assert ccagent.connector_outcome_problems(invocation, failed) == [
        "input 'f': con receive-file failed with exit code 3", '  Traceback', '  HTTPError: 404']
    version = {'label': 'connector', 'command': 'con', 'mode': 'cli-version'}
    assert ccagent.connector_outcome_problems(version, dict(ok, stdout='1\n')) == []
    assert 'needs connector CLI version 1' in ccagent.connector_outcome_problems(version, dict(ok, stdout='2'))[0]


def test_command_failure_lines():
    lines = ccagent.command_failure_lines(2, 'a\n\nb\n')
    assert lines == ['command exited with code 2', 'last lines of stderr:', '  a', '  b']
    assert 'signal 9' in ccagent.command_failure_lines(-9, '')[0]


def test_expected_listing_entries():
    listing = [{'class': 'File', 'basename': 'a', 'size': 1},
               {'class': 'Directory', 'basename': 'sub', 'listing': [{'class': 'File', 'basename': 'b'}]}]
    entries = ccagent.expected_listing_entries('/d', listing)
    assert [(e['path'], e['class'], e['sizeBytes']) for e in entries] == [
        ('/d/a', 'File', 1), ('/d/sub', 'Directory', None), ('/d/sub/b', 'File', None)]


# ---- console-script launchers (which connectors a fork server may import) --------------------------------------

PIP_LAUNCHER = '''#!/usr/bin/python3
# -*- coding: utf-8 -*-
import re
import sys
from red_connector_http.main import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(main())
'''


@pytest.mark.parametrize('text, expected', [
    (PIP_LAUNCHER, (['/usr/bin/python3'], 'red_connector_http.main', 'main')),
    # the test image's launcher: no argv[0] fix, double quotes, blank lines and comments
    ('#!/usr/bin/python3\n# Launcher\nimport sys\n\nfrom red_connector_http.http.main import main\n\n'
     'if __name__ == "__main__":\n    sys.exit(main())\n',
     (['/usr/bin/python3'], 'red_connector_http.http.main', 'main')),
    # an entry point `module:object.attribute`, a venv's interpreter, `env`
    (PIP_LAUNCHER.replace('from red_connector_http.main import main', 'from pkg.cli import app').replace(
        'sys.exit(main())', 'sys.exit(app.run())').replace('#!/usr/bin/python3', '#!/venv/bin/python3.11'),
     (['/venv/bin/python3.11'], 'pkg.cli', 'app.run')),
    (PIP_LAUNCHER.replace('#!/usr/bin/python3', '#!/usr/bin/env python3'),
     (['/usr/bin/env', 'python3'], 'red_connector_http.main', 'main')),
])
def test_console_script_entry_of_launchers(text, expected):
    assert ccagent.console_script_entry(text) == expected


@pytest.mark.parametrize('text', [
    '',
    'import sys\nfrom m import main\nsys.exit(main())\n',  # no shebang
    PIP_LAUNCHER.replace('#!/usr/bin/python3', '#!/bin/sh'),
    PIP_LAUNCHER.replace('#!/usr/bin/python3', '#!/usr/bin/python3 -S'),  # interpreter options
    PIP_LAUNCHER.replace('import sys\n', 'import sys\nprint("work at import")\n'),  # code that runs on import
    PIP_LAUNCHER.replace('import sys\n', 'import sys\nimport os\n'),
    PIP_LAUNCHER.replace('    sys.exit(main())\n', '    main()\n'),
    PIP_LAUNCHER + 'main()\n',  # code after the guard runs on import too
    PIP_LAUNCHER.replace('    sys.exit(main())\n', '    sys.exit(main())\n    sys.exit(main())\n'),
    PIP_LAUNCHER.replace('sys.exit(main())', 'sys.exit(other())'),  # not what was imported
    PIP_LAUNCHER.replace('from red_connector_http.main import main\n',
                         'from red_connector_http.main import main\nfrom x import main\n'),
    '#!/usr/bin/python3\nimport sys\nif __name__ == "__main__":\n    sys.exit(main())\n',  # nothing imported
    '#!/usr/bin/python3\nfrom m import main\nmain()\n',  # no guard: the script is the connector's work
])
def test_console_script_entry_refuses_anything_else(text):
    assert ccagent.console_script_entry(text) is None
