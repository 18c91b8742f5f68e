"""End-to-end runs of the container-side agent as a subprocess on the host.

A tiny connector program (written into a temporary PATH directory) implements the connector CLI protocol by
copying local files: receive-* copies from `access.path`, send-* copies to `access.path`. CC_AGENT_ROOT replaces
`/cc`. Set CC_AGENT_TEST_PYTHONS (os.pathsep separated interpreters, e.g. a python3.6) to also run the success case
under other interpreters.
"""

import base64
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cc_agency.agent import ccagent

AGENT_PATH = os.path.abspath(ccagent.__file__)
CONNECTOR_NAME = 'fake-connector'
SECRET_PASSWORD = 'hunter2-very-secret'

# the connector's work, in `main()`; its process id at import time tells whether a call ran in the process that
# imported it (a script of its own) or in a fork of a fork server (a console-script launcher)
FAKE_CONNECTOR_SOURCE = r'''
import json, os, shutil, stat, sys, time

IMPORTED_IN = os.getpid()


def main():
    mode = sys.argv[1]
    args = sys.argv[2:]
    log_path = os.environ.get('FAKECON_LOG')
    if log_path:
        access_mode = ''
        if args and os.path.isfile(args[0]):
            access_mode = oct(stat.S_IMODE(os.stat(args[0]).st_mode))
        with open(log_path, 'a') as log:
            log.write(json.dumps({'mode': mode, 'args': args, 'accessMode': access_mode, 'argv0': sys.argv[0],
                                  'forked': os.getpid() != IMPORTED_IN}) + '\n')
    print('connector chatter on stdout')
    if mode == 'cli-version':
        print(os.environ.get('FAKECON_VERSION', '1'))
        sys.exit(0)
    if mode == 'umount-dir':
        sys.exit(0)
    with open(args[0]) as f:
        access = json.load(f)
    if mode.endswith('-validate'):
        if access.get('invalid'):
            sys.stderr.write('access is invalid: missing path\n')
            sys.exit(2)
        sys.exit(0)
    if access.get('fail'):
        sys.stderr.write('cannot reach server with password {}\n'.format(access.get('password')))
        sys.exit(3)
    if access.get('crash'):
        raise RuntimeError('the connector crashed')
    if access.get('killParent'):  # a fork server dying (say by the OOM killer) while a call runs
        os.kill(os.getppid(), 9)
        time.sleep(0.5)
    if access.get('killed'):
        os.kill(os.getpid(), 9)
    if access.get('sleepSeconds'):
        slept_from = time.time()
        time.sleep(float(access['sleepSeconds']))
        if log_path:
            with open(log_path, 'a') as log:
                log.write(json.dumps({'mode': 'slept', 'from': slept_from, 'to': time.time()}) + '\n')
    target = args[1]
    if mode == 'receive-file':
        shutil.copyfile(access['path'], target)
    elif mode in ('receive-dir', 'mount-dir'):
        shutil.copytree(access['path'], target)
    elif mode == 'send-file':
        shutil.copyfile(target, access['path'])
    elif mode == 'send-dir':
        shutil.copytree(target, access['path'])
    else:
        sys.stderr.write('unknown mode ' + mode + '\n')
        sys.exit(4)
'''

TOOL_SOURCE = r'''
import argparse, os, sys
parser = argparse.ArgumentParser()
parser.add_argument('--word')
parser.add_argument('-n', type=int)
parser.add_argument('--exit', type=int, default=0)
parser.add_argument('--no-output', action='store_true')
parser.add_argument('infile')
args = parser.parse_args()
with open(args.infile) as f:
    text = f.read()
print('stdout of tool: ' + ' '.join(sys.argv[1:]))
sys.stderr.write('first stderr line\nlast stderr line\n')
if not args.no_output:
    root = os.path.splitext(os.path.basename(args.infile))[0]
    with open(root + '.out', 'w') as f:
        f.write((args.word + ':' + text) * args.n)
sys.exit(args.exit)
'''


# how pip installs a connector's console script (what `entry_points={'console_scripts': [...]}` gives)
PIP_LAUNCHER = '''#!{python}
# -*- coding: utf-8 -*-
import re
import sys
from fake_connector_impl import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(main())
'''


@pytest.fixture(params=['script', 'console-script'])
def sandbox(tmp_path, request):
    """Directories, fake connector, tool script and environment for one agent run. The connector is a script of
    its own (a process per call) or a module with pip's console-script launcher (calls forked by a fork server)."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    connector_path = bin_dir / CONNECTOR_NAME
    library_dir = tmp_path / 'lib'
    library_dir.mkdir()
    if request.param == 'script':
        connector_path.write_text('#!{}\n{}\nmain()\n'.format(sys.executable, FAKE_CONNECTOR_SOURCE))
    else:
        (library_dir / 'fake_connector_impl.py').write_text(FAKE_CONNECTOR_SOURCE)
        connector_path.write_text(PIP_LAUNCHER.format(python=sys.executable))
    connector_path.chmod(0o755)
    tool_path = tmp_path / 'tool.py'
    tool_path.write_text(TOOL_SOURCE)
    remote = tmp_path / 'remote'
    remote.mkdir()
    (remote / 'input.txt').write_text('hello\n')
    root = tmp_path / 'cc'
    root.mkdir()
    private_tmp = tmp_path / 'private-tmp'
    private_tmp.mkdir()
    env = dict(os.environ)
    env.update({'PATH': '{}{}{}'.format(bin_dir, os.pathsep, env.get('PATH', '')), 'CC_AGENT_ROOT': str(root),
                'FAKECON_LOG': str(tmp_path / 'connector.log'), 'TMPDIR': str(private_tmp),
                'PYTHONPATH': str(library_dir)})
    return {'tmp': tmp_path, 'root': root, 'remote': remote, 'tool': str(tool_path), 'env': env,
            'log': tmp_path / 'connector.log', 'privateTmp': private_tmp, 'forked': request.param != 'script',
            'connector': str(connector_path)}


def connector(**access):
    return {'command': CONNECTOR_NAME, 'access': access}


def tool_job(sandbox, extra_args=(), **options):
    """A job running tool.py --word W -n N INFILE with one File input and one File output."""
    remote = sandbox['remote']
    base_options = {'validateConnectors': True, 'checkConnectorVersions': True}
    base_options.update(options)
    return {
        'batchId': 'b1',
        'cli': {
            'cwlVersion': 'v1.0', 'class': 'CommandLineTool',
            'baseCommand': [sys.executable, sandbox['tool']] + list(extra_args),
            'inputs': {
                'infile': {'type': 'File', 'inputBinding': {'position': 1}},
                'word': {'type': 'string', 'inputBinding': {'prefix': '--word'}},
                'count': {'type': 'int', 'inputBinding': {'prefix': '-n'}},
            },
            'outputs': {'result': {'type': 'File', 'outputBinding': {'glob': '$(inputs.infile.nameroot).out'}}},
        },
        'inputs': {
            'infile': {'class': 'File', 'basename': 'input.txt', 'size': 6,
                       'checksum': 'sha1$f572d396fae9206628714fb2ce00f72e94f2258f',
                       'connector': connector(path=str(remote / 'input.txt'), password=SECRET_PASSWORD)},
            'word': 'hi',
            'count': 2,
        },
        'outputs': {'result': {'class': 'File', 'connector': connector(path=str(remote / 'result.txt'))}},
        'options': base_options,
    }


def run_agent(sandbox, job, python=sys.executable, job_bytes=None):
    """Run the agent on `job`; return (completed process, parsed result)."""
    job_path = sandbox['root'] / 'job.json'
    job_path.write_bytes(job_bytes if job_bytes is not None else json.dumps(job).encode('utf-8'))
    completed = subprocess.run([python, AGENT_PATH, str(job_path)], env=sandbox['env'], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=120)
    assert completed.returncode == 0, completed.stderr.decode()
    assert not job_path.exists(), 'the job file must be deleted'
    stdout_text = completed.stdout.decode('ascii')
    assert stdout_text.count('\n') == 1, 'exactly one JSON document on stdout: {!r}'.format(stdout_text)
    result = json.loads(stdout_text)
    assert set(result) == {'state', 'command', 'process', 'inputs', 'outputs', 'connectorChecks', 'debugInfo',
                           'streamFiles', 'streamData'}
    assert os.listdir(str(sandbox['privateTmp'])) == [], 'private files must be removed'
    assert SECRET_PASSWORD not in stdout_text
    return completed, result


def stream_text(result, stream):
    """What the command wrote on `stream`: the file the agent's result names, which the result also carries (base64)
    when it is small, as the streams of every test here are."""
    text = Path(result['streamFiles'][stream]).read_text()
    assert base64.b64decode(result['streamData'][stream]).decode() == text
    return text


def connector_calls(sandbox):
    if not sandbox['log'].exists():
        return []
    return [json.loads(line) for line in sandbox['log'].read_text().splitlines()]


def test_python_files_have_no_modern_only_syntax():
    source = open(AGENT_PATH).read()
    for forbidden in ('capture_output', 'text=True', 'dataclass', ':=', 'f"', "f'"):
        assert forbidden not in source, forbidden


def interpreters_under_test():
    extra = [p for p in os.environ.get('CC_AGENT_TEST_PYTHONS', '').split(os.pathsep) if p]
    return [sys.executable] + extra


@pytest.mark.parametrize('python', interpreters_under_test())
def test_success_with_file_input_string_int_and_file_output(sandbox, python):
    _, result = run_agent(sandbox, tool_job(sandbox), python=python)
    assert result['state'] == 'succeeded', result['debugInfo']
    assert result['debugInfo'] is None
    local_input = str(sandbox['root'] / 'inputs' / 'infile' / 'input.txt')
    # position 0 for both named inputs: sorted by key, count before word; infile has position 1
    assert result['command'] == [sys.executable, sandbox['tool'], '-n', '2', '--word', 'hi', local_input]
    assert result['process']['returnCode'] == 0
    assert stream_text(result, 'stdout') == 'stdout of tool: -n 2 --word hi {}\n'.format(local_input)
    assert stream_text(result, 'stderr') == 'first stderr line\nlast stderr line\n'
    assert result['streamFiles'] == {stream: str(sandbox['root'] / 'streams' / stream)
                                     for stream in ('stdout', 'stderr')}
    assert result['inputs'] == {'infile': {'class': 'File', 'path': local_input, 'size': 6}, 'word': 'hi',
                                'count': 2}
    output_path = str(sandbox['root'] / 'outputs' / 'input.out')
    assert result['outputs'] == {'result': {'class': 'File', 'path': output_path, 'size': 18, 'sent': True}}
    assert (sandbox['remote'] / 'result.txt').read_text() == 'hi:hello\nhi:hello\n'

    calls = connector_calls(sandbox)
    assert sorted(c['mode'] for c in calls) == ['cli-version', 'receive-file', 'receive-file-validate',
                                                'send-file', 'send-file-validate']
    assert [c['mode'] for c in calls][-2:] == ['receive-file', 'send-file']
    assert all(c['accessMode'] == '0o600' for c in calls if c['mode'] != 'cli-version')
    # a console-script connector is imported once (by its fork server) and every call is a fork of it, with the
    # argv[0] a process of its own would have
    assert [c['forked'] for c in calls] == [sandbox['forked']] * 5
    assert {c['argv0'] for c in calls} == {sandbox['connector']}


def test_nonzero_exit_fails_with_code_and_stderr(sandbox):
    _, result = run_agent(sandbox, tool_job(sandbox, extra_args=['--exit', '3']))
    assert result['state'] == 'failed'
    assert result['process']['returnCode'] == 3
    assert result['debugInfo'][0] == 'command exited with code 3'
    assert '  last stderr line' in result['debugInfo']
    assert stream_text(result, 'stderr').endswith('last stderr line\n')
    assert 'send-file' not in [c['mode'] for c in connector_calls(sandbox)]


def test_missing_output_fails(sandbox):
    _, result = run_agent(sandbox, tool_job(sandbox, extra_args=['--no-output']))
    assert result['state'] == 'failed'
    assert result['process']['returnCode'] == 0
    assert any("output 'result'" in line and 'matched no path' in line for line in result['debugInfo'])
    assert 'send-file' not in [c['mode'] for c in connector_calls(sandbox)]


def test_ambiguous_output_fails(sandbox):
    job = tool_job(sandbox)
    job['cli']['outputs']['result']['outputBinding']['glob'] = '*'
    job['cli']['stdout'] = 'log.txt'
    _, result = run_agent(sandbox, job)
    assert result['state'] == 'failed'
    assert any('matched 2 paths' in line for line in result['debugInfo'])


def test_failing_connector_fails_with_its_stderr_without_secrets(sandbox):
    job = tool_job(sandbox)
    job['inputs']['infile']['connector']['access']['fail'] = True
    completed, result = run_agent(sandbox, job)
    assert result['state'] == 'failed'
    assert result['process']['returnCode'] is None
    assert result['debugInfo'][0] == "input 'infile': fake-connector receive-file failed with exit code 3"
    assert result['debugInfo'][1] == '  cannot reach server with password ********'
    assert SECRET_PASSWORD not in json.dumps(result)


@pytest.mark.parametrize('sandbox', ['console-script'], indirect=True)
def test_a_console_script_whose_import_starts_a_thread_runs_as_processes(sandbox):
    """A fork keeps only the thread that forked: a connector module that starts a thread on import is not served by
    a fork server."""
    module = sandbox['tmp'] / 'lib' / 'fake_connector_impl.py'
    module.write_text(FAKE_CONNECTOR_SOURCE + '\nimport threading\n'
                      'threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n')
    _, result = run_agent(sandbox, tool_job(sandbox))
    assert result['state'] == 'succeeded', result['debugInfo']
    assert [c['forked'] for c in connector_calls(sandbox)] == [False] * 5


@pytest.mark.parametrize('sandbox', ['console-script'], indirect=True)
def test_a_call_whose_fork_server_dies_fails_and_is_not_made_again(sandbox):
    job = tool_job(sandbox, validateConnectors=False, checkConnectorVersions=False)
    job['inputs']['infile']['connector']['access']['killParent'] = True
    _, result = run_agent(sandbox, job)
    assert result['debugInfo'] == ["input 'infile': connector command {!r}: its fork server ended while the call "
                                   "ran".format(sandbox['connector'])]
    assert [c['mode'] for c in connector_calls(sandbox)] == ['receive-file']


def test_a_connector_that_crashes_or_is_killed_fails_as_a_process_would(sandbox):
    job = tool_job(sandbox)
    job['inputs']['infile']['connector']['access']['crash'] = True
    _, result = run_agent(sandbox, job)
    assert result['debugInfo'][0] == "input 'infile': fake-connector receive-file failed with exit code 1"
    assert result['debugInfo'][-1] == '  RuntimeError: the connector crashed'
    assert any('Traceback (most recent call last):' in line for line in result['debugInfo'])
    job['inputs']['infile']['connector']['access'] = dict(job['inputs']['infile']['connector']['access'],
                                                           crash=False, killed=True)
    _, result = run_agent(sandbox, job)
    assert result['debugInfo'] == ["input 'infile': fake-connector receive-file failed with exit code -9"]


def test_version_check_failure(sandbox):
    sandbox['env']['FAKECON_VERSION'] = '2'
    _, result = run_agent(sandbox, tool_job(sandbox))
    assert result['state'] == 'failed'
    assert "connector 'fake-connector': cli-version printed '2'" in result['debugInfo'][0]
    assert 'receive-file' not in [c['mode'] for c in connector_calls(sandbox)]


def test_invalid_access_fails_validation(sandbox):
    job = tool_job(sandbox)
    job['outputs']['result']['connector']['access']['invalid'] = True
    _, result = run_agent(sandbox, job)
    assert result['state'] == 'failed'
    assert result['debugInfo'] == ["output 'result': fake-connector send-file-validate failed with exit code 2",
                                   '  access is invalid: missing path']


def test_validation_and_version_checks_disabled(sandbox):
    job = tool_job(sandbox, validateConnectors=False, checkConnectorVersions=False)
    job['outputs']['result']['connector']['access']['invalid'] = True
    _, result = run_agent(sandbox, job)
    assert result['state'] == 'succeeded', result['debugInfo']
    assert [c['mode'] for c in connector_calls(sandbox)] == ['receive-file', 'send-file']


def test_connector_not_installed(sandbox):
    job = tool_job(sandbox)
    job['inputs']['infile']['connector']['command'] = 'no-such-connector-xyz'
    _, result = run_agent(sandbox, job)
    assert result['state'] == 'failed'
    assert "connector command 'no-such-connector-xyz' was not found in PATH" in '\n'.join(result['debugInfo'])


def test_checksum_and_size_mismatch(sandbox):
    job = tool_job(sandbox)
    job['inputs']['infile']['size'] = 7
    job['inputs']['infile']['checksum'] = 'sha1$0000000000000000000000000000000000000000'
    _, result = run_agent(sandbox, job)
    assert result['state'] == 'failed'
    text = '\n'.join(result['debugInfo'])
    assert 'has 6 bytes, expected 7' in text
    assert 'has checksum sha1$f572d396fae9206628714fb2ce00f72e94f2258f, expected sha1$0000' in text


def test_command_not_found(sandbox):
    job = tool_job(sandbox)
    job['cli']['baseCommand'] = 'no-such-command-xyz'
    _, result = run_agent(sandbox, job)
    assert result['state'] == 'failed'
    assert result['debugInfo'][0].startswith("command 'no-such-command-xyz' was not found")


def test_missing_required_input_fails_before_any_connector(sandbox):
    job = tool_job(sandbox)
    del job['inputs']['word']
    _, result = run_agent(sandbox, job)
    assert result['state'] == 'failed'
    assert result['debugInfo'] == ["input 'word' is required but missing"]
    assert connector_calls(sandbox) == []


def test_invalid_job_file_gives_failed_result(sandbox):
    _, result = run_agent(sandbox, None, job_bytes=b'{not json')
    assert result['state'] == 'failed'
    assert result['debugInfo'][0].startswith('the job file is not valid JSON')


def test_directory_in_and_out_with_listing_and_named_stdout(sandbox):
    remote = sandbox['remote']
    (remote / 'dir' / 'sub').mkdir(parents=True)
    (remote / 'dir' / 'a.txt').write_text('A')
    (remote / 'dir' / 'sub' / 'b.txt').write_text('BB')
    job = {
        'cli': {
            'baseCommand': [sys.executable, '-c',
                            'import shutil,sys; shutil.copytree(sys.argv[1], "copy"); print("copied")'],
            'inputs': {'indir': {'type': 'Directory', 'inputBinding': {'position': 0}}},
            'outputs': {'copy': {'type': 'Directory', 'outputBinding': {'glob': 'copy'}},
                        'log': {'type': 'stdout'}},
            'stdout': 'run.log',
        },
        'inputs': {'indir': {'class': 'Directory', 'basename': 'dir', 'connector': connector(path=str(remote / 'dir')),
                             'listing': [{'class': 'File', 'basename': 'a.txt', 'size': 1},
                                         {'class': 'Directory', 'basename': 'sub',
                                          'listing': [{'class': 'File', 'basename': 'b.txt', 'size': 2}]}]}},
        'outputs': {'copy': {'class': 'Directory', 'connector': connector(path=str(remote / 'copied'))},
                    'log': {'class': 'stdout', 'connector': connector(path=str(remote / 'run.log'))}},
        'options': {},
    }
    _, result = run_agent(sandbox, job)
    assert result['state'] == 'succeeded', result['debugInfo']
    assert (remote / 'copied' / 'sub' / 'b.txt').read_text() == 'BB'
    assert (remote / 'run.log').read_text() == 'copied\n'
    assert stream_text(result, 'stdout') == 'copied\n'
    assert result['streamFiles']['stdout'] == str(sandbox['root'] / 'outputs' / 'run.log')  # the CLI names it
    assert result['outputs']['log']['path'] == str(sandbox['root'] / 'outputs' / 'run.log')
    calls = connector_calls(sandbox)
    receive_dir = [c for c in calls if c['mode'] == 'receive-dir'][0]
    assert receive_dir['args'][1] == str(sandbox['root'] / 'inputs' / 'indir' / 'dir')
    assert receive_dir['args'][2] == '--listing'
    assert sorted(c['mode'] for c in calls if c['mode'].endswith('validate')) == [
        'receive-dir-validate', 'send-dir-validate', 'send-file-validate']


def test_listing_entry_missing_fails(sandbox):
    remote = sandbox['remote']
    (remote / 'dir').mkdir()
    job = {
        'cli': {'baseCommand': 'true', 'inputs': {'d': {'type': 'Directory'}}, 'outputs': {}},
        'inputs': {'d': {'class': 'Directory', 'connector': connector(path=str(remote / 'dir')),
                         'listing': [{'class': 'File', 'basename': 'gone.txt'}]}},
        'outputs': {},
    }
    _, result = run_agent(sandbox, job)
    assert result['state'] == 'failed'
    assert 'gone.txt does not exist after receiving' in result['debugInfo'][0]


def test_mount_and_umount(sandbox):
    remote = sandbox['remote']
    (remote / 'dir').mkdir()
    (remote / 'dir' / 'x').write_text('x')
    job = {
        'cli': {'baseCommand': 'ls', 'inputs': {'d': {'type': 'Directory', 'inputBinding': {}}}, 'outputs': {}},
        'inputs': {'d': {'class': 'Directory', 'connector': dict(connector(path=str(remote / 'dir')), mount=True)}},
        'outputs': {},
    }
    _, result = run_agent(sandbox, job)
    assert result['state'] == 'succeeded', result['debugInfo']
    assert stream_text(result, 'stdout') == 'x\n'
    modes = [c['mode'] for c in connector_calls(sandbox)]
    assert sorted(modes[:2]) == ['cli-version', 'mount-dir-validate']
    assert modes[2:] == ['mount-dir', 'umount-dir']


def test_many_inputs_received_concurrently(sandbox):
    job = tool_job(sandbox)
    job['cli']['inputs']['extra'] = {'type': 'File[]'}
    job['inputs']['extra'] = [
        {'class': 'File', 'connector': connector(path=str(sandbox['remote'] / 'input.txt'), sleepSeconds=1)}
        for _ in range(4)]
    _, result = run_agent(sandbox, job)
    assert result['state'] == 'succeeded', result['debugInfo']
    assert [item['path'] for item in result['inputs']['extra']] == [
        str(sandbox['root'] / 'inputs' / 'extra' / str(index) / 'extra') for index in range(4)]
    # receives run at once: the connectors' sleeps overlap (one after the other, none would)
    sleeps = [c for c in connector_calls(sandbox) if c['mode'] == 'slept']
    assert len(sleeps) == 4
    most_at_once = max(sum(1 for other in sleeps if other['from'] <= sleep['from'] < other['to']) for sleep in sleeps)
    assert most_at_once >= 2
    calls = connector_calls(sandbox)
    assert len([c for c in calls if c['mode'] == 'receive-file']) == 5
    assert result['process']['returnCode'] == 0


def test_the_streams_stay_whole_in_files_and_the_result_stays_small(sandbox):
    """3 MiB on stdout: the file the result names holds all of it (the controller reads it), the result none."""
    job = {'cli': {'baseCommand': [sys.executable, '-c', 'import sys; sys.stdout.write("y" * (3 << 20) + "end")'],
                   'inputs': {}, 'outputs': {}}, 'inputs': {}, 'outputs': {}}
    completed, result = run_agent(sandbox, job)
    assert result['state'] == 'succeeded', result['debugInfo']
    assert Path(result['streamFiles']['stdout']).read_bytes() == b'y' * (3 << 20) + b'end'
    assert Path(result['streamFiles']['stderr']).read_bytes() == b''
    assert result['streamData'] == {'stderr': ''}  # only what is small rides in the result
    assert len(completed.stdout) < 2000


def test_streams_of_up_to_64_kib_ride_in_the_result_byte_for_byte(sandbox):
    script = ('import sys; sys.stdout.buffer.write(bytes(range(256)) * 256); '
              'sys.stderr.buffer.write(b"e" * (64 * 1024 + 1))')
    job = {'cli': {'baseCommand': [sys.executable, '-c', script], 'inputs': {}, 'outputs': {}},
           'inputs': {}, 'outputs': {}}
    _, result = run_agent(sandbox, job)
    assert result['state'] == 'succeeded', result['debugInfo']
    assert set(result['streamData']) == {'stdout'}
    assert base64.b64decode(result['streamData']['stdout']) == bytes(range(256)) * 256
    assert Path(result['streamFiles']['stderr']).read_bytes() == b'e' * (64 * 1024 + 1)


def test_sigterm_gives_failed_result_and_stops_the_command(sandbox):
    job = {'cli': {'baseCommand': [sys.executable, '-c',
                                   'import time; open("started", "w").close(); time.sleep(60)'],
                   'inputs': {}, 'outputs': {}},
           'inputs': {}, 'outputs': {}}
    job_path = sandbox['root'] / 'job.json'
    job_path.write_text(json.dumps(job))
    process = subprocess.Popen([sys.executable, AGENT_PATH, str(job_path)], env=sandbox['env'],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    started_path = sandbox['root'] / 'outputs' / 'started'
    deadline_seconds = time.time() + 30
    while not started_path.exists() and time.time() < deadline_seconds:
        time.sleep(0.05)
    process.terminate()
    stdout_bytes, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    result = json.loads(stdout_bytes.decode('ascii'))
    assert result['state'] == 'failed'
    assert result['debugInfo'] == ['the agent was terminated by signal 15']


# ---- real red-connector-http over loopback ---------------------------------------------------------------------------

# a virtualenv with red-connector-http 1.0 (the connector the test image has); bash tests/run.sh makes it
RCH_BIN_DIR = os.environ.get('CC_AGENT_TEST_RCH_BIN') or os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), '.cache', 'rch-venv', 'bin')


class StoringHandler(http.server.BaseHTTPRequestHandler):
    """GET serves `files`, POST/PUT stores the body into `files`."""
    files = {}

    def do_GET(self):
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get('Content-Length') or 0)
        self.files[self.path] = self.rfile.read(length)
        self.send_response(200)
        self.send_header('Content-Length', '0')
        self.end_headers()

    do_PUT = do_POST

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    StoringHandler.files = {'/data/input.txt': b'hello\n'}
    server = http.server.HTTPServer(('127.0.0.1', 0), StoringHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield 'http://127.0.0.1:{}'.format(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_real_red_connector_http_over_loopback(sandbox, http_server):
    assert os.path.exists(os.path.join(RCH_BIN_DIR, 'red-connector-http')), \
        'red-connector-http 1.0 is not installed in {} (bash tests/run.sh installs it)'.format(RCH_BIN_DIR)
    sandbox['env']['PATH'] = RCH_BIN_DIR + os.pathsep + sandbox['env']['PATH']
    job = tool_job(sandbox)
    job['inputs']['infile']['connector'] = {'command': 'red-connector-http', 'access': {
        'url': http_server + '/data/input.txt', 'auth': {'username': 'alice', 'password': SECRET_PASSWORD}}}
    job['outputs']['result']['connector'] = {'command': 'red-connector-http', 'access': {
        'url': http_server + '/upload/result.txt', 'method': 'PUT'}}
    _, result = run_agent(sandbox, job)
    assert result['state'] == 'succeeded', result['debugInfo']
    assert StoringHandler.files['/upload/result.txt'] == b'hi:hello\nhi:hello\n'

    job = tool_job(sandbox)
    job['inputs']['infile']['connector'] = {'command': 'red-connector-http', 'access': {
        'url': http_server + '/data/missing.txt', 'auth': {'username': 'alice', 'password': SECRET_PASSWORD}}}
    _, result = run_agent(sandbox, job)
    assert result['state'] == 'failed'
    assert "input 'infile': red-connector-http receive-file failed with exit code 3" == result['debugInfo'][0]
    assert '404' in '\n'.join(result['debugInfo'])
