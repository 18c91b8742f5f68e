"""The real client: `faice exec red.yml` of cc-faice 9.3.0 (PyPI) submits to this broker and the batches run.

cc-faice pins its own dependencies (cc-core 9.3, red-fill 9.3, urllib3 < 2, docker 6), so it lives in its own
virtual environment, `.cache/faice-venv` (made here on first use with `pip install cc-faice==9.3.0`; PyPI must be
reachable then, later runs reuse it). `faice exec` validates the RED with red-val, fills `{{variables}}` (from a
keyring, else by asking on the terminal), then POSTs the whole RED to `<execution.settings.access.url>/red` with
HTTP Basic auth from `access.auth` and prints the broker's JSON answer with pprint
(`{'experimentId': ..., 'registrationComplete': True}`).
"""
import ast
import fcntl
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests import reds

REPO = Path(__file__).resolve().parents[2]
FAICE_VERSION = '9.3.0'


def faice_venv_path():
    return Path(os.environ.get('CC_TEST_CACHE') or REPO / '.cache') / 'faice-venv'


@pytest.fixture(scope='session')
def faice():
    """Path of the `faice` command of cc-faice 9.3.0, installed in its own venv on first use."""
    venv = faice_venv_path()
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(str(venv) + '.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        marker = venv / '.cc-faice-{}'.format(FAICE_VERSION)
        if not marker.exists():
            subprocess.run([sys.executable, '-m', 'venv', '--clear', str(venv)], check=True, timeout=300)
            result = subprocess.run([str(venv / 'bin' / 'python'), '-m', 'pip', 'install', '--quiet',
                                     '--disable-pip-version-check', 'cc-faice=={}'.format(FAICE_VERSION)],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
            assert result.returncode == 0, 'pip install cc-faice=={} failed:\n{}'.format(FAICE_VERSION, result.stdout)
            marker.touch()
    return str(venv / 'bin' / 'faice')


def faice_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(('PYTHON', 'VIRTUAL_ENV', 'DBUS'))}
    env.update(HOME=str(tmp_path), PYTHONUNBUFFERED='1')
    return env


def three_batches(file_server, prefix):
    batches = []
    for i in range(3):
        file_server.add('/files/{}-{}.txt'.format(prefix, i), '{} {} '.format(prefix, i).encode())
        batches.append(reds.batch(file_server.base_url, name='{}-{}.txt'.format(prefix, i),
                                  out='{}-{}.out'.format(prefix, i), word='f', times=i + 1))
    return batches


def experiment_id_from(output):
    match = re.search(r"\{'experimentId': '[0-9a-f]{24}', 'registrationComplete': True\}", output)
    assert match, 'no experimentId in the output of faice:\n' + output
    return ast.literal_eval(match.group(0))['experimentId']


def check_ran(agency, alice, file_server, experiment_id, prefix):
    done = agency.wait_terminal(alice, experiment_id, 3, timeout=90)
    assert sorted(b['state'] for b in done) == ['succeeded'] * 3, [b['state'] for b in done]
    for i in range(3):
        expected = '{} {} '.format(prefix, i).encode() + b'f' * (i + 1)
        assert file_server.uploaded('/uploads/{}-{}.out'.format(prefix, i)) == expected


def test_faice_exec_submits_a_red_file_and_its_batches_run(faice, agency, alice, file_server, mongo_client,
                                                          tmp_path):
    red = reds.red(three_batches(file_server, 'faice'), execution_settings={
        'access': {'url': agency.url, 'auth': {'username': 'alice', 'password': 'alice-pw'}}})
    red_file = tmp_path / 'red.yml'
    red_file.write_text(yaml.safe_dump(red, sort_keys=False))

    result = subprocess.run([faice, 'exec', str(red_file)], capture_output=True, text=True, cwd=str(tmp_path),
                            env=faice_env(tmp_path), timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    experiment_id = experiment_id_from(result.stdout)
    check_ran(agency, alice, file_server, experiment_id, 'faice')

    experiment = alice.get(agency.url + '/experiments/' + experiment_id).json()
    assert experiment['batchCount'] == 3 and experiment['username'] == 'alice'
    # the client's own login, sent inside the RED, is never stored
    assert 'access' not in experiment.get('execution', {}).get('settings', {})
    database = mongo_client[agency.conf['mongo']['db']]
    for name in ('experiments', 'batches'):
        for doc in database[name].find():
            assert 'alice-pw' not in repr(doc), name


def _run_on_pty(argv, env, cwd, answers, timeout=120):
    """Runs argv on a new pseudo-terminal (its controlling terminal, as a person's shell gives it) and answers
    prompts: answers is a list of (prompt regex, reply). Returns (exit status, everything printed)."""
    pid, fd = pty.fork()
    if pid == 0:   # child
        try:
            os.chdir(cwd)
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    output = b''
    pending = list(answers)
    deadline = time.monotonic() + timeout
    finished = False
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:   # EIO: the child closed the terminal
                    chunk = b''
                if not chunk:
                    finished = True
                    break
                output += chunk
            if pending and re.search(pending[0][0], output.decode(errors='replace')):
                os.write(fd, pending.pop(0)[1].encode() + b'\r')
    finally:
        if not finished:
            os.kill(pid, signal.SIGKILL)   # our own child, by PID
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    text = output.decode(errors='replace')
    assert finished, 'faice did not finish in {} s:\n{}'.format(timeout, text)
    return os.waitstatus_to_exitcode(status), text


def test_faice_exec_asks_for_the_password_variable_on_the_terminal(faice, agency, alice, file_server, tmp_path):
    """The usual way: the RED file holds `{{agency_password}}`, faice asks for it without echo."""
    red = reds.red(three_batches(file_server, 'tty'), execution_settings={
        'access': {'url': agency.url, 'auth': {'username': 'alice', 'password': '{{agency_password}}'}}})
    red_file = tmp_path / 'red.yml'
    red_file.write_text(yaml.safe_dump(red, sort_keys=False))

    status, output = _run_on_pty([faice, 'exec', str(red_file)], faice_env(tmp_path), str(tmp_path), [
        (r'agency_password \(protected\): ', 'alice-pw'),
    ])
    if 'Add variables to keyring' in output:   # only where a keyring backend is usable
        pytest.fail('unexpected keyring prompt:\n' + output)
    assert status == 0, output
    assert 'alice-pw' not in output   # getpass: no echo
    experiment_id = experiment_id_from(output)
    check_ran(agency, alice, file_server, experiment_id, 'tty')


def test_faice_exec_shows_the_brokers_refusal(faice, agency, alice, tmp_path):
    red = reds.red([reds.batch('http://127.0.0.1:9')], execution_settings={
        'access': {'url': agency.url, 'auth': {'username': 'alice', 'password': 'wrong'}}})
    red_file = tmp_path / 'red.yml'
    red_file.write_text(yaml.safe_dump(red, sort_keys=False))
    result = subprocess.run([faice, 'exec', str(red_file)], capture_output=True, text=True, cwd=str(tmp_path),
                            env=faice_env(tmp_path), timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert "{'message': 'invalid credentials'}" in result.stdout, result.stdout + result.stderr
    assert '401' in result.stderr + result.stdout
