#!/usr/bin/env python3
"""The local demo of CC-Agency, driven by deploy/demo/demo.sh (which installs what is missing first).

    demo.py start    engine, database, controller, broker, file server (each only if not running yet), the demo
                     image and user, then submits the example RED and shows its batches until they end
    demo.py stop     stops what `start` started, by the PIDs it recorded (a Docker engine that was already
                     running before the demo is left alone)
    demo.py status   what runs, where

Everything lives below the state directory (default: <repo>/.cache/demo): configuration, logs, PID files, the
database, the files the batches read and write. Settings (environment variables):

    CC_DEMO_DIR              state directory
    CC_DEMO_DOCKER_SOCKET    Docker engine socket (default /var/run/docker.sock). When nothing answers there, the
                             demo starts dockerd: on the default socket with dockerd's default directories, on
                             another socket with its own directories below the state directory.
    CC_DEMO_MONGO            host:port of a MongoDB to use instead of the embedded SecantusDB server
    CC_DEMO_SECANTUSD        secantusd-py to run (default: <repo>/.cache/secantus-venv/bin/secantusd-py)
    CC_DEMO_BROKER_PORT      8080     CC_DEMO_FILES_PORT 8081     CC_DEMO_MONGO_PORT 27117
    CC_DEMO_CONTROLLER_PORT  6101     CC_DEMO_BATCHES    4 (3 to 5 make a good show)

`stop` and `status` need only the standard library; `start` needs the project installed (demo.sh does that).
"""
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from localcluster.engines import NETWORK_FLAGS  # noqa: E402  (the checkout's own package, standard library only)
from localcluster.processes import ProcessError, cmdline, pid_alive, port_open, terminate_pid  # noqa: E402
STATE = Path(os.environ.get('CC_DEMO_DIR') or REPO / '.cache' / 'demo').resolve()
DEFAULT_SOCKET = '/var/run/docker.sock'
DOCKER_SOCKET = os.environ.get('CC_DEMO_DOCKER_SOCKET') or DEFAULT_SOCKET
BROKER_PORT = int(os.environ.get('CC_DEMO_BROKER_PORT') or 8080)
FILES_PORT = int(os.environ.get('CC_DEMO_FILES_PORT') or 8081)
MONGO_PORT = int(os.environ.get('CC_DEMO_MONGO_PORT') or 27117)
CONTROLLER_PORT = int(os.environ.get('CC_DEMO_CONTROLLER_PORT') or 6101)
EXTERNAL_MONGO = os.environ.get('CC_DEMO_MONGO') or None
BATCH_COUNT = int(os.environ.get('CC_DEMO_BATCHES') or 4)
SECANTUSD = os.environ.get('CC_DEMO_SECANTUSD') or str(REPO / '.cache' / 'secantus-venv' / 'bin' / 'secantusd-py')

BROKER_URL = 'http://127.0.0.1:{}'.format(BROKER_PORT)
FILES_URL = 'http://127.0.0.1:{}'.format(FILES_PORT)
CONF_PATH = STATE / 'cc-agency.yml'
PASSWORD_PATH = STATE / 'demo-password'
FILES_DIR = STATE / 'files'
DEMO_USER = 'demo'
DEMO_IMAGE = 'local/cc-demo:1'
TERMINAL = ('succeeded', 'failed', 'cancelled')

# service name -> words of which its command line must contain one (PIDs are only signalled after this check)
SERVICES = (('broker', ('ccagency-broker', 'cc_agency.broker')),
            ('controller', ('ccagency-controller', 'cc_agency.controller')),
            ('fileserver', ('fileserver.py',)), ('secantusd', ('secantusd',)), ('dockerd', ('dockerd',)))


def say(*parts):
    print('==>', *parts, flush=True)


def fail(message):
    print('demo: ' + message, file=sys.stderr, flush=True)
    sys.exit(1)


# ------------------------------------------------------------------------------------------------ processes

def pid_file(name):
    return STATE / '{}.pid'.format(name)


def running_pid(name):
    """The PID recorded for a service, if that process still runs and is what we started."""
    markers = dict(SERVICES)[name]
    try:
        pid = int(pid_file(name).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if pid_alive(pid) and any(marker in (cmdline(pid) or '') for marker in markers):
        return pid
    return None


def spawn(name, argv, env=None):
    log_path = STATE / '{}.log'.format(name)
    with open(log_path, 'ab') as log:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   cwd=str(STATE), env=env, start_new_session=True)
    pid_file(name).write_text('{}\n'.format(process.pid))
    return process


def wait_for(what, check, process=None, timeout=60, log=None):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:
            pass
        if process is not None and process.poll() is not None:
            fail('{} exited with status {}; its log: {}\n{}'.format(what, process.returncode, log, _tail(log)))
        if time.monotonic() > deadline:
            fail('{} did not come up within {} s; its log: {}\n{}'.format(what, timeout, log, _tail(log)))
        time.sleep(0.1)


def _tail(path, lines=20):
    try:
        with open(path, errors='replace') as f:
            return ''.join(f.readlines()[-lines:])
    except (OSError, TypeError):
        return ''


def stop_pid(name, pid, timeout):
    """SIGTERM, then SIGKILL after `timeout`; True when the process is gone."""
    try:
        terminate_pid(pid, timeout, name=name)
    except ProcessError:
        return False
    return True


# ------------------------------------------------------------------------------------------------ engine

def docker_ping(sock_path=DOCKER_SOCKET, timeout=2):
    """True when a Docker engine answers /_ping on the unix socket (standard library only)."""
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(timeout)
            s.connect(sock_path)
            s.sendall(b'GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n')
            answer = s.recv(1024)
        return answer.startswith(b'HTTP/1.') and b' 200 ' in answer.split(b'\r\n', 1)[0] + b' '
    except OSError:
        return False


def start_engine():
    if docker_ping():
        say('Docker engine: answers on {}'.format(DOCKER_SOCKET))
        return
    if os.geteuid() != 0:
        fail('no Docker engine answers on {} and only root can start one: run as root'.format(DOCKER_SOCKET))
    argv = ['dockerd'] + NETWORK_FLAGS
    if DOCKER_SOCKET == DEFAULT_SOCKET:
        pidfile = Path('/var/run/docker.pid')
    else:   # a private engine: its own directories, nothing shared with a system engine
        base = STATE / 'docker'
        pidfile = base / 'docker.pid'
        for sub in ('data', 'exec'):
            (base / sub).mkdir(parents=True, exist_ok=True)
        argv += ['-H', 'unix://' + DOCKER_SOCKET, '--data-root', str(base / 'data'), '--exec-root',
                 str(base / 'exec'), '--pidfile', str(pidfile)]
    if pidfile.exists():   # left by a dockerd that was killed: dockerd refuses to start while it exists
        try:
            old = int(pidfile.read_text().split()[0])
        except (ValueError, IndexError):
            old = None
        if old is None or not pid_alive(old):
            say('removing the stale {} (PID {} is not running)'.format(pidfile, old))
            pidfile.unlink()
    if shutil.which('dockerd') is None:
        fail('dockerd not found (apt-get install docker.io)')
    say('Docker engine: starting dockerd on {} (log: {})'.format(DOCKER_SOCKET, STATE / 'dockerd.log'))
    process = spawn('dockerd', argv)
    wait_for('dockerd', docker_ping, process, timeout=90, log=STATE / 'dockerd.log')


# ------------------------------------------------------------------------------------------------ database

def mongo_address():
    if EXTERNAL_MONGO:
        host, _, port = EXTERNAL_MONGO.rpartition(':')
        return host or '127.0.0.1', int(port)
    return '127.0.0.1', MONGO_PORT


def mongo_ping():
    import pymongo
    host, port = mongo_address()
    client = pymongo.MongoClient(host=host, port=port, serverSelectionTimeoutMS=1000, directConnection=True)
    try:
        client.admin.command('ping')
        return True
    finally:
        client.close()


def start_database():
    if EXTERNAL_MONGO:
        say('Database: MongoDB at {} (CC_DEMO_MONGO)'.format(EXTERNAL_MONGO))
        wait_for('MongoDB at ' + EXTERNAL_MONGO, mongo_ping, timeout=15)
        return
    if running_pid('secantusd'):
        say('Database: SecantusDB already runs on 127.0.0.1:{}'.format(MONGO_PORT))
        wait_for('SecantusDB', mongo_ping, timeout=30, log=STATE / 'secantusd.log')
        return
    if not os.access(SECANTUSD, os.X_OK):
        fail('{} not found (demo.sh installs it into .cache/secantus-venv)'.format(SECANTUSD))
    if port_open(MONGO_PORT):
        fail('port {} is taken by another program: set CC_DEMO_MONGO_PORT'.format(MONGO_PORT))
    (STATE / 'db').mkdir(exist_ok=True)
    (STATE / 'secantusd.toml').write_text('')   # an empty config: never read a stray secantusd.toml
    say('Database: starting SecantusDB (MongoDB wire protocol) on 127.0.0.1:{}, data in {}'.format(
        MONGO_PORT, STATE / 'db'))
    process = spawn('secantusd', [SECANTUSD, '--config', str(STATE / 'secantusd.toml'), '--host', '127.0.0.1',
                                  '--port', str(MONGO_PORT), '--storage-path', str(STATE / 'db'),
                                  '--log-level', 'WARNING'])
    wait_for('SecantusDB', mongo_ping, process, timeout=60, log=STATE / 'secantusd.log')


# ------------------------------------------------------------------------------------------------ agency

def write_config():
    import yaml
    host, port = mongo_address()
    conf = {
        'broker': {
            'external_url': BROKER_URL,
            'auth': {'num_login_attempts': 3, 'block_for_seconds': 30, 'tokens_valid_for_seconds': 86400},
        },
        'controller': {
            'external_url': 'tcp://127.0.0.1:{}'.format(CONTROLLER_PORT),
            'bind_host': '127.0.0.1',
            'bind_port': CONTROLLER_PORT,
            'docker': {
                # the demo image is built here and never pulled
                'core_image': {'url': 'docker.io/curiouscontainers/cc-core:5.4.0', 'disable_pull': True},
                # the engine has no bridge network: containers share the host's, to reach the file server
                'nodes': {'local': {'base_url': 'unix://' + DOCKER_SOCKET.lstrip('/'), 'network': 'host'}},
            },
            'scheduling': {'strategy': 'spread', 'attempts_to_fail': 3},
        },
        'mongo': {'host': host, 'port': port, 'db': 'ccagency_demo'},
    }
    text = ('# Written by deploy/demo/demo.py for the local demo; the commented reference is '
            'cc-agency.example.yml.\n' + yaml.safe_dump(conf, sort_keys=False))
    if not CONF_PATH.exists() or CONF_PATH.read_text() != text:
        CONF_PATH.write_text(text)
        return True
    return False


def command(script, module):
    """The console script next to this interpreter (as pip installed it), else `python -m module`."""
    path = Path(sys.executable).parent / script
    return [str(path)] if path.exists() else [sys.executable, '-m', module]


def http_ok(url):
    import requests
    return requests.get(url, timeout=2).status_code == 200


def start_agency(config_changed):
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    if config_changed:   # services of an earlier run with another configuration
        for name in ('broker', 'controller'):
            pid = running_pid(name)
            if pid:
                stop_pid(name, pid, 20)
    if running_pid('controller'):
        say('Controller: already runs (PID {})'.format(running_pid('controller')))
    else:
        say('Controller: starting ccagency-controller -c {}'.format(CONF_PATH))
        process = spawn('controller', command('ccagency-controller', 'cc_agency.controller.main')
                        + ['-c', str(CONF_PATH)], env)
        time.sleep(0.5)
        if process.poll() is not None:
            fail('the controller exited; its log: {}\n{}'.format(STATE / 'controller.log',
                                                              _tail(STATE / 'controller.log')))
    if running_pid('broker'):
        say('Broker: already runs on {}'.format(BROKER_URL))
    else:
        if port_open(BROKER_PORT):
            fail('port {} is taken by another program: set CC_DEMO_BROKER_PORT'.format(BROKER_PORT))
        say('Broker: starting ccagency-broker on {} (development server)'.format(BROKER_URL))
        process = spawn('broker', command('ccagency-broker', 'cc_agency.broker.devserver')
                        + ['-c', str(CONF_PATH), '--host', '127.0.0.1', '--port', str(BROKER_PORT)], env)
        wait_for('the broker', lambda: http_ok(BROKER_URL + '/'), process, timeout=60, log=STATE / 'broker.log')
    if running_pid('fileserver'):
        say('File server: already runs on {}'.format(FILES_URL))
    else:
        if port_open(FILES_PORT):
            fail('port {} is taken by another program: set CC_DEMO_FILES_PORT'.format(FILES_PORT))
        say('File server: {} serves {} (inputs/, outputs/)'.format(FILES_URL, FILES_DIR))
        process = spawn('fileserver', [sys.executable, str(REPO / 'deploy' / 'demo' / 'fileserver.py'),
                                       '--root', str(FILES_DIR), '--port', str(FILES_PORT)])
        wait_for('the file server', lambda: port_open(FILES_PORT), process, timeout=30,
                 log=STATE / 'fileserver.log')


def demo_image():
    """Builds the demo image from host files (python3 + red-connector-http, no registry) and loads it."""
    import docker
    from localcluster import images
    client = docker.DockerClient(base_url='unix://' + DOCKER_SOCKET, version='auto', timeout=120)
    try:
        try:
            client.images.get(DEMO_IMAGE)
            say('Image: {} is on the engine'.format(DEMO_IMAGE))
            return
        except docker.errors.ImageNotFound:
            pass
        say('Image: building {} (busybox + python3 + red-connector-http from host files, cached in {})'.format(
            DEMO_IMAGE, images.cache_dir()))
        t0 = time.monotonic()
        images.load_images([client], refs=(images.TEST_IMAGE,))
        repository, tag = DEMO_IMAGE.rsplit(':', 1)
        client.api.tag(images.TEST_IMAGE, repository, tag)
        say('Image: {} loaded in {:.1f} s'.format(DEMO_IMAGE, time.monotonic() - t0))
    finally:
        client.close()


def demo_user():
    if not PASSWORD_PATH.exists():
        PASSWORD_PATH.write_text(secrets.token_urlsafe(12) + '\n')
        PASSWORD_PATH.chmod(0o600)
    password = PASSWORD_PATH.read_text().strip()
    result = subprocess.run(command('ccagency', 'cc_agency.cli.main') + [
        'create-broker-user', '-c', str(CONF_PATH), '--username', DEMO_USER, '--password-stdin'],
        input=password + '\n', capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        fail('ccagency create-broker-user failed: ' + result.stderr.strip())
    say('User: "{}", password in {}'.format(DEMO_USER, PASSWORD_PATH))
    return password


# ------------------------------------------------------------------------------------------------ the RED

TEXTS = [
    ('zen.txt', 'Beautiful is better than ugly. Explicit is better than implicit. Simple is better than complex. '
                'Complex is better than complicated. Flat is better than nested. Sparse is better than dense. '
                'Readability counts.'),
    ('fair.txt', 'Data should be findable, accessible, interoperable and reusable. Reusable data needs a clear '
                 'description, and a clear description makes data findable.'),
    ('red.txt', 'A RED file describes an experiment: the command line tool, the container image, and the inputs '
                'and outputs of every batch. Every batch runs in a container of its own.'),
    ('agency.txt', 'The broker registers experiments, the controller places batches on Docker engines, and the '
                   'database remembers every state a batch went through.'),
    ('docker.txt', 'An engine runs containers. A container runs one batch. When the batch ends, the container '
                   'is removed and its outputs are sent where the RED file says.'),
]

# counts the words of a text file: the top N go to stdout and all counts to counts.txt (in /cc/outputs)
WORDCOUNT = '''\
import collections, re, sys, time
path, top, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
words = re.findall(r"[a-z]+", open(path).read().lower())
counts = collections.Counter(words)
time.sleep(pause)
with open("counts.txt", "w") as out:
    for word, n in counts.most_common():
        out.write("%d %s\\n" % (n, word))
print("%d words, %d distinct; most common: %s" % (len(words), len(counts),
      ", ".join("%s (%d)" % item for item in counts.most_common(top))))
'''


def demo_red():
    """The example RED: one batch per text; inputs and outputs over red-connector-http from/to the file server.
    `execution` names this broker, with the password as a variable that `faice exec` asks for."""
    batches = []
    for i, (name, _) in enumerate(TEXTS[:BATCH_COUNT]):
        stem = name.rsplit('.', 1)[0]
        batches.append({
            'inputs': {
                'text': {'class': 'File', 'connector': {
                    'command': 'red-connector-http',
                    'access': {'url': '{}/inputs/{}'.format(FILES_URL, name), 'method': 'GET'}}},
                'top': 3,
                'pause': 1 + i % 3,
            },
            'outputs': {
                'counts': {'class': 'File', 'connector': {
                    'command': 'red-connector-http',
                    'access': {'url': '{}/outputs/{}-counts.txt'.format(FILES_URL, stem), 'method': 'PUT'}}},
            },
        })
    return {
        'redVersion': '9',
        'cli': {
            'cwlVersion': 'v1.0',
            'class': 'CommandLineTool',
            'doc': 'Counts the words of a text file.',
            'baseCommand': ['python3', '-c', WORDCOUNT],
            'inputs': {
                'text': {'type': 'File', 'inputBinding': {'position': 0}},
                'top': {'type': 'int', 'inputBinding': {'position': 1}},
                'pause': {'type': 'float', 'inputBinding': {'position': 2}},
            },
            'outputs': {'counts': {'type': 'File', 'outputBinding': {'glob': 'counts.txt'}}},
        },
        'container': {'engine': 'docker', 'settings': {'image': {'url': DEMO_IMAGE}, 'ram': 256}},
        'execution': {'engine': 'ccagency', 'settings': {'access': {
            'url': BROKER_URL, 'auth': {'username': DEMO_USER, 'password': '{{demo_password}}'}}}},
        'batches': batches,
    }


class _Literal(str):
    pass


def _yaml_dump(data):
    import yaml

    class Dumper(yaml.SafeDumper):
        pass
    Dumper.add_representer(_Literal, lambda d, v: d.represent_scalar('tag:yaml.org,2002:str', v, style='|'))
    return yaml.dump(data, Dumper=Dumper, sort_keys=False, width=120)


def submit(password):
    import requests
    inputs = FILES_DIR / 'inputs'
    inputs.mkdir(parents=True, exist_ok=True)
    (FILES_DIR / 'outputs').mkdir(parents=True, exist_ok=True)
    for name, text in TEXTS[:BATCH_COUNT]:
        (inputs / name).write_text(text + '\n')
    red = demo_red()
    shown = json.loads(json.dumps(red))
    shown['cli']['baseCommand'][2] = _Literal(WORDCOUNT)
    red_path = STATE / 'red.yml'
    red_path.write_text('# The demo experiment (written by deploy/demo/demo.py). Submit it again with\n'
                        '#   faice exec {}   (asks for demo_password), or with curl (see docs/user-guide.md)\n'
                        .format(red_path) + _yaml_dump(shown))
    red['execution']['settings']['access']['auth']['password'] = password   # what faice does with the variable
    response = requests.post(BROKER_URL + '/red', json=red, auth=(DEMO_USER, password), timeout=60)
    if response.status_code != 200:
        fail('POST /red answered {}: {}'.format(response.status_code, response.text))
    experiment_id = response.json()['experimentId']
    say('Submitted {} ({} batches): experiment {}'.format(red_path, len(red['batches']), experiment_id))
    return experiment_id


def follow(experiment_id, password, timeout=600):
    import requests
    session = requests.Session()
    session.auth = (DEMO_USER, password)
    t0 = time.monotonic()
    last = None
    while True:
        batches = session.get(BROKER_URL + '/batches', params={'experimentId': experiment_id, 'limit': 100,
                                                               'ascending': 'true'}, timeout=30).json()
        states = [b['state'] for b in batches]
        line = ' · '.join('{} {}'.format(state, states.count(state))
                          for state in ('registered', 'scheduled', 'processing') + TERMINAL if states.count(state))
        if line != last:
            print('    [{:5.1f} s] {}'.format(time.monotonic() - t0, line), flush=True)
            last = line
        if batches and all(state in TERMINAL for state in states):
            return batches, time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            fail('the batches did not end within {} s; see {}'.format(timeout, STATE / 'controller.log'))
        time.sleep(0.5)


def report(experiment_id, batches, seconds, password):
    import requests
    auth = (DEMO_USER, password)
    say('All {} batches ended in {:.1f} s:'.format(len(batches), seconds))
    for batch in batches:
        full = requests.get('{}/batches/{}'.format(BROKER_URL, batch['_id']), auth=auth, timeout=30).json()
        text = full['inputs']['text']['connector']['access']['url'].rsplit('/', 1)[1]
        if full['state'] == 'succeeded':
            stdout = requests.get('{}/batches/{}/stdout'.format(BROKER_URL, batch['_id']), auth=auth,
                                  timeout=30).text.strip()
            output_url = full['outputs']['counts']['connector']['access']['url']
            local = FILES_DIR / output_url[len(FILES_URL) + 1:]
            print('    {} {:<10} succeeded on node {}: {}\n{:>20}-> {}'.format(batch['_id'], text, full['node'],
                                                                           stdout, '', local))
        else:
            reason = (full['history'][-1].get('debugInfo') or ['(no reason recorded)'])
            print('    {} {:<10} {}: {}'.format(batch['_id'], text, full['state'], ' | '.join(reason)[:400]))
    ok = all(b['state'] == 'succeeded' for b in batches)
    print()
    say('Outputs: {} (uploaded by red-connector-http to {}/outputs/)'.format(FILES_DIR / 'outputs', FILES_URL))
    print('''
    Try the REST API (password in {pw}):
      curl -u {user}:$(cat {pw}) '{url}/batches?experimentId={experiment}'
      curl -u {user}:$(cat {pw}) {url}/batches/{batch}/stdout
    Submit the experiment again:  bash deploy/demo/demo.sh   (services keep running; only a new experiment)
    Logs and state:               {state}
    Stop everything the demo started:  bash deploy/demo/demo.sh stop
'''.format(pw=PASSWORD_PATH, user=DEMO_USER, url=BROKER_URL, state=STATE, experiment=experiment_id,
           batch=batches[0]['_id']), flush=True)
    return 0 if ok else 1


# ------------------------------------------------------------------------------------------------ commands

def start():
    STATE.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    start_engine()
    start_database()
    config_changed = write_config()
    start_agency(config_changed)
    demo_image()
    password = demo_user()
    say('Services ready in {:.1f} s'.format(time.monotonic() - t0))
    experiment_id = submit(password)
    batches, seconds = follow(experiment_id, password)
    return report(experiment_id, batches, seconds, password)


def stop():
    if not STATE.exists():
        print('demo: nothing to stop ({} does not exist)'.format(STATE))
        return 0
    stopped = 0
    for name, _ in SERVICES:
        pid = running_pid(name)
        if pid is None:
            if pid_file(name).exists():
                pid_file(name).unlink()
            continue
        ok = stop_pid(name, pid, 30 if name == 'dockerd' else 15)
        print('stopped {} (PID {}){}'.format(name, pid, '' if ok else ' -- still running!'), flush=True)
        stopped += 1
        if ok:
            pid_file(name).unlink()
    if not stopped:
        print('demo: nothing was running')
    else:
        print('The demo is stopped; its state stays in {} (delete it to start afresh).'.format(STATE))
    return 0


def status():
    for name, _ in SERVICES:
        pid = running_pid(name)
        print('{:<11} {}'.format(name, 'PID {}'.format(pid) if pid else '-'))
    print('engine      {} {}'.format(DOCKER_SOCKET, 'answers' if docker_ping() else 'does not answer'))
    print('broker      {}'.format(BROKER_URL))
    return 0


def main(argv):
    commands = {'start': start, 'stop': stop, 'status': status}
    name = argv[1] if len(argv) > 1 else 'start'
    if name not in commands:
        print('usage: demo.py [start|stop|status]', file=sys.stderr)
        return 2
    return commands[name]()


if __name__ == '__main__':
    sys.exit(main(sys.argv))
