"""The README's first command, `bash deploy/demo/demo.sh`, for real: it starts a Docker engine, SecantusDB, the
controller, the broker and the file server, builds and loads the demo image, creates the demo user, submits the
example RED and follows its batches to the end; `demo.sh stop` stops all of it by PID.

Differences from a run on a fresh machine, only to fit beside the other tests: a state directory, engine socket
and ports of its own (so dockerd starts with its own directories instead of on /var/run/docker.sock), the python
of this test session (which has the project installed) instead of `.cache/demo-venv`, and the secantusd-py of the
test services. The apt step finds everything installed (.ci/run installs the same packages).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from localcluster.engines import mount_points_below, umount_lazy
from localcluster.mongo import find_secantusd
from localcluster.processes import free_port, pid_alive

REPO = Path(__file__).resolve().parents[2]


def run_demo(env, *args, timeout=400):
    return subprocess.run(['bash', str(REPO / 'deploy' / 'demo' / 'demo.sh')] + list(args), cwd=str(REPO), env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


def test_demo_runs_the_example_and_stops_everything_it_started():
    state = Path(tempfile.mkdtemp(prefix='ccd-', dir='/tmp'))   # short: dockerd's sockets live below it
    env = dict(os.environ, CC_DEMO_DIR=str(state), CC_DEMO_DOCKER_SOCKET=str(state / 'd.sock'),
               CC_DEMO_PYTHON=sys.executable, CC_DEMO_SECANTUSD=find_secantusd(), CC_DEMO_BATCHES='3',
               CC_DEMO_BROKER_PORT=str(free_port()), CC_DEMO_FILES_PORT=str(free_port()),
               CC_DEMO_MONGO_PORT=str(free_port()), CC_DEMO_CONTROLLER_PORT=str(free_port()))
    env.pop('CC_DEMO_MONGO', None)
    pids = {}
    try:
        t0 = time.monotonic()
        first = run_demo(env)
        output = first.stdout + first.stderr
        assert first.returncode == 0, output + _logs(state)
        for line in ('Docker engine: starting dockerd on {}'.format(state / 'd.sock'),
                     'Database: starting SecantusDB', 'Controller: starting ccagency-controller',
                     'Broker: starting ccagency-broker on http://127.0.0.1:{}'.format(env['CC_DEMO_BROKER_PORT']),
                     'All 3 batches ended', 'bash deploy/demo/demo.sh stop'):
            assert line in output, line + '\n' + output
        assert re.search(r'\] succeeded 3$', output, re.M), output       # the last progress line
        assert output.count(' succeeded on node local: ') == 3, output
        outputs = state / 'files' / 'outputs'
        assert sorted(p.name for p in outputs.iterdir()) == ['fair-counts.txt', 'red-counts.txt', 'zen-counts.txt']
        assert (outputs / 'zen-counts.txt').read_text().splitlines()[:3] == ['6 is', '6 better', '6 than']
        assert str(outputs / 'zen-counts.txt') in output
        assert (state / 'red.yml').read_text().count('red-connector-http') == 6
        first_seconds = time.monotonic() - t0

        for name in ('broker', 'controller', 'fileserver', 'secantusd', 'dockerd'):
            pids[name] = int((state / '{}.pid'.format(name)).read_text())
            assert pid_alive(pids[name]), name

        # again: the running services are reused, a new experiment runs
        second = run_demo(env)
        output = second.stdout + second.stderr
        assert second.returncode == 0, output + _logs(state)
        assert 'Controller: already runs' in output and 'Broker: already runs' in output, output
        assert 'Docker engine: answers on' in output, output
        assert output.count(' succeeded on node local: ') == 3, output

        status = run_demo(env, 'status', timeout=60)
        assert 'dockerd     PID {}'.format(pids['dockerd']) in status.stdout, status.stdout
    finally:
        stopped = run_demo(env, 'stop', timeout=180)
        for pid in pids.values():
            assert not pid_alive(pid), 'still running after demo.sh stop: {}\n{}'.format(pid, stopped.stdout)
        for point in mount_points_below(str(state)):
            umount_lazy(point)
        shutil.rmtree(str(state), ignore_errors=True)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    for name in ('broker', 'controller', 'fileserver', 'secantusd', 'dockerd'):
        assert 'stopped {} (PID {})'.format(name, pids[name]) in stopped.stdout, stopped.stdout
    print('demo: first run {:.1f} s'.format(first_seconds))


def _logs(state):
    text = ''
    for name in ('dockerd', 'secantusd', 'controller', 'broker', 'fileserver'):
        path = state / '{}.log'.format(name)
        if path.exists():
            text += '\n--- {} ---\n{}'.format(name, path.read_text(errors='replace')[-2000:])
    return text
