"""deploy/ holds the seed's production files as working templates; these tests run them with adapted paths:

- the systemd units pass `systemd-analyze verify` (no warning at all);
- the Apache 2 site passes `apache2ctl configtest` with Debian's apache2 (mod_ssl, mod_proxy_uwsgi, mod_headers)
  and its answers carry HSTS and `X-Content-Type-Options: nosniff`;
- `pip install .` into a virtualenv of Debian's python3.11 (the interpreter of uwsgi-plugin-python3) gives the
  commands and `<venv>/lib/python3.11/site-packages/cc_agency/broker/app.py`, the path the ini names; uwsgi started
  as the broker unit starts it serves the broker from the ini, dropping privileges, behind Apache with TLS, and the
  controller started as its unit starts it (reading ~/.config/cc-agency.yml) runs the batch registered through it;
  the ini's `harakiri` limit kills a request that runs too long and its master replaces the worker.

Each test copies a template and replaces only what must differ on a test machine (paths, ports, users): the rest
is the file as shipped. Everything started here is stopped by PID (uwsgi by its own process group).
"""
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests
import yaml

from cc_agency import auth
from tests import reds
from localcluster.processes import free_port, pid_alive, terminate_pid

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / 'deploy'
DEBIAN_PYTHON = '/usr/bin/python3.11'   # the interpreter Debian's uwsgi-plugin-python3 embeds
SEED_VENV = '/home/cc/ccagency-venv'


def _read(relative):
    return (DEPLOY / relative).read_text()


def _world_readable_dir(prefix):
    """A new directory that uwsgi's unprivileged workers and Apache's www-data children can enter."""
    path = tempfile.mkdtemp(prefix=prefix)
    os.chmod(path, 0o755)
    return Path(path)


def _copy_source(target):
    """The files `pip install .` needs, copied so that the build leaves nothing in the work tree."""
    target.mkdir(parents=True)
    for name in ('setup.py', 'README.md'):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, target / name)
    shutil.copytree(REPO / 'cc_agency', target / 'cc_agency', ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
    return target


def _pip(venv, *args):
    result = subprocess.run([str(venv / 'bin' / 'python'), '-m', 'pip', '--disable-pip-version-check', 'install',
                             '--quiet'] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout


@pytest.fixture(scope='session')
def deploy_venv():
    """A virtualenv of Debian's python3.11 with `pip install .` of this work tree (as the seed's install steps).

    It lives in the temporary directory (uwsgi's workers run as nobody and must read it), keyed by setup.py, and
    is reused across sessions; the project itself is reinstalled from the current sources every session.
    """
    key = hashlib.sha256((REPO / 'setup.py').read_bytes()).hexdigest()[:12]
    venv = Path(tempfile.gettempdir()) / 'cca-deploy-venv-{}'.format(key)
    with open(str(venv) + '.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        build = Path(tempfile.mkdtemp(prefix='cca-deploy-src-'))
        try:
            source = _copy_source(build / 'src')
            if not (venv / '.complete').exists():
                shutil.rmtree(venv, ignore_errors=True)
                subprocess.run([DEBIAN_PYTHON, '-m', 'venv', str(venv)], check=True, timeout=120)
                _pip(venv, str(source))
                (venv / '.complete').touch()
            else:
                _pip(venv, '--no-deps', '--force-reinstall', str(source))
        finally:
            shutil.rmtree(build, ignore_errors=True)
        os.chmod(venv, 0o755)
    return venv


# ------------------------------------------------------------------------------------------------ systemd

def test_systemd_units_pass_systemd_analyze_verify(deploy_venv, tmp_path):
    controller = _read('systemd/ccagency-controller.service')
    broker = _read('systemd/ccagency-broker.service')
    # the seed's lines, unchanged
    for line in ('ExecStart={}/bin/ccagency-controller'.format(SEED_VENV), 'User=cc', 'Group=cc',
                 'Requires=mongod.service', 'Environment=PYTHONUNBUFFERED=1', 'WantedBy=multi-user.target'):
        assert line in controller.splitlines(), line
    for line in ('ExecStart=/usr/bin/uwsgi /opt/ccagency/privileged/ccagency-broker.ini',
                 'Environment=VIRTUAL_ENV={}'.format(SEED_VENV),
                 'Requires=ccagency-controller.service mongod.service apache2.service'):
        assert line in broker.splitlines(), line

    # the venv is where this machine has it; MongoDB is a stub unit (no mongod here); the rest as shipped
    (tmp_path / 'ccagency-controller.service').write_text(controller.replace(SEED_VENV, str(deploy_venv)))
    (tmp_path / 'ccagency-broker.service').write_text(broker)
    stubs = tmp_path / 'stubs'
    stubs.mkdir()
    (stubs / 'mongod.service').write_text('[Unit]\nDescription=MongoDB stub\n[Service]\nExecStart=/bin/true\n')
    if not Path('/lib/systemd/system/apache2.service').exists():
        (stubs / 'apache2.service').write_text('[Unit]\nDescription=Apache stub\n[Service]\nExecStart=/bin/true\n')
    result = subprocess.run(['systemd-analyze', 'verify', '--man=no', './ccagency-controller.service',
                             './ccagency-broker.service'], cwd=str(tmp_path), capture_output=True, text=True,
                            env=dict(os.environ, SYSTEMD_UNIT_PATH='{}:'.format(stubs)), timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == '', 'systemd-analyze warns:\n' + result.stdout + result.stderr


# ------------------------------------------------------------------------------------------------ Apache

def _self_signed(directory):
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj',
                    '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', str(directory / 'key.pem'),
                    '-out', str(directory / 'cert.pem')], check=True, capture_output=True, timeout=60)
    return directory / 'cert.pem', directory / 'key.pem'


class Apache:
    """Debian's apache2 with a private copy of /etc/apache2 (APACHE_CONFDIR), runtime files in work_dir."""

    def __init__(self, work_dir):
        self.work_dir = work_dir
        self.conf_dir = work_dir / 'apache2'
        shutil.copytree('/etc/apache2', str(self.conf_dir), symlinks=True)
        for sub in ('run', 'log'):
            (work_dir / sub).mkdir(exist_ok=True)
        self.pid_file = work_dir / 'run' / 'apache2.pid'
        with open(self.conf_dir / 'envvars', 'a') as f:
            f.write('\nexport APACHE_RUN_DIR={0}/run APACHE_LOCK_DIR={0}/run APACHE_PID_FILE={1} '
                    'APACHE_LOG_DIR={0}/log\n'.format(work_dir, self.pid_file))
        for enabled in (self.conf_dir / 'sites-enabled').iterdir():
            enabled.unlink()   # Debian's default site listens on port 80
        self.env = dict(os.environ, APACHE_CONFDIR=str(self.conf_dir))

    def run(self, *args):
        return subprocess.run(list(args), env=self.env, capture_output=True, text=True, timeout=60)

    def enable_site(self, name, text):
        (self.conf_dir / 'sites-available' / (name + '.conf')).write_text(text)
        for command in (['a2enmod', '-q', 'ssl'], ['a2enmod', '-q', 'proxy_uwsgi'], ['a2enmod', '-q', 'headers'],
                        ['a2ensite', '-q', name]):
            result = self.run(*command)
            assert result.returncode == 0, result.stdout + result.stderr

    def listen_only(self, address):
        (self.conf_dir / 'ports.conf').write_text('Listen {}\n'.format(address))

    def configtest(self):
        return self.run('apache2ctl', 'configtest')

    def start(self):
        result = self.run('apache2ctl', 'start')
        assert result.returncode == 0, result.stdout + result.stderr + self.error_log()
        deadline = time.monotonic() + 20
        while not self.pid_file.exists():
            assert time.monotonic() < deadline, 'apache2 wrote no PID file\n' + self.error_log()
            time.sleep(0.05)

    def stop(self):
        if self.pid_file.exists():
            pid = int(self.pid_file.read_text().split()[0])
            terminate_pid(pid, 20, name='apache2')

    def error_log(self):
        path = self.work_dir / 'log' / 'error.log'
        return path.read_text(errors='replace') if path.exists() else ''


def test_apache_site_passes_configtest():
    site = _read('apache2/ccagency-broker.conf')
    assert 'ProxyPass /cc unix:/opt/ccagency/unprivileged/ccagency-broker.sock|uwsgi://ccagency-broker/' in site
    assert '<VirtualHost *:443>' in site and 'SSLEngine on' in site
    work = _world_readable_dir('cca-apache-')
    try:
        cert, key = _self_signed(work / 'ssl')
        apache = Apache(work)
        # only the certificate paths change: Debian's own ports.conf, mods and Listen 443 as installed
        apache.enable_site('ccagency-broker', site.replace('/opt/ssl/cert.pem', str(cert))
                           .replace('/opt/ssl/key.pem', str(key)))
        result = apache.configtest()
        assert result.returncode == 0 and 'Syntax OK' in result.stderr, result.stdout + result.stderr
    finally:
        shutil.rmtree(str(work), ignore_errors=True)


# ------------------------------------------------------------------------------------------------ uwsgi

def _unit_service_lines(text):
    """ExecStart and Environment of a unit's [Service] section."""
    exec_start, environment = None, {}
    for line in text.splitlines():
        if line.startswith('ExecStart='):
            exec_start = line[len('ExecStart='):].split()
        elif line.startswith('Environment='):
            key, _, value = line[len('Environment='):].partition('=')
            environment[key] = value
    return exec_start, environment


def _process_group_members(pgid):
    members = []
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open('/proc/{}/stat'.format(entry)) as f:
                    fields = f.read().rsplit(')', 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] not in ('Z', 'X'):
                members.append(int(entry))
    return members


def _stop_group(process, timeout=20):
    """uwsgi, its master and its workers: all in the process group we created for it."""
    if process is None:
        return
    pgid = process.pid
    for sig in (signal.SIGINT, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + timeout
        while _process_group_members(pgid) and time.monotonic() < deadline:
            process.poll()
            time.sleep(0.05)
        if not _process_group_members(pgid):
            break
    process.poll()


def test_uwsgi_serves_the_broker_from_the_ini_behind_apache(deploy_venv, mongo_server, engine, file_server):
    app_path = deploy_venv / 'lib' / 'python3.11' / 'site-packages' / 'cc_agency' / 'broker' / 'app.py'
    assert app_path.is_file(), 'pip install . did not put the broker module where the ini names it'
    for command in ('ccagency', 'ccagency-controller', 'ccagency-broker'):
        assert (deploy_venv / 'bin' / command).exists(), command

    work = _world_readable_dir('cca-deploy-')
    home = work / 'home'       # the home of the "cc" user: ~/.config/cc-agency.yml
    socket_dir = work / 'unprivileged'
    for directory in (home / '.config', socket_dir):
        directory.mkdir(parents=True)
    for directory in (home, home / '.config'):
        os.chmod(directory, 0o755)
    https_port, controller_port = free_port(), free_port()
    db_name = 't_deploy_{}'.format(os.getpid())
    conf = {
        'broker': {'external_url': 'https://127.0.0.1:{}/cc'.format(https_port),
                   'auth': {'num_login_attempts': 3, 'block_for_seconds': 30, 'tokens_valid_for_seconds': 86400,
                            'bcrypt_rounds': 4}},
        'controller': {'external_url': 'tcp://127.0.0.1:{}'.format(controller_port), 'bind_host': '127.0.0.1',
                       'bind_port': controller_port,
                       'docker': {'core_image': {'url': 'docker.io/curiouscontainers/cc-core:5.4.0',
                                                 'disable_pull': False},
                                  'nodes': {'node1': {'base_url': engine.base_url, 'network': 'host'}}},
                       'scheduling': {'strategy': 'spread', 'attempts_to_fail': 3}},
        'mongo': {'host': mongo_server.host, 'port': mongo_server.port, 'db': db_name},
    }
    conf_path = home / '.config' / 'cc-agency.yml'
    conf_path.write_text(yaml.safe_dump(conf))
    os.chmod(conf_path, 0o644)

    # the ini as shipped, but: socket in our directory, the venv of this machine, nobody instead of user cc
    ini = _read('uwsgi/ccagency-broker.ini')
    assert 'wsgi-file = {}/lib/python3.11/site-packages/cc_agency/broker/app.py'.format(SEED_VENV) in ini
    ini = (ini.replace('/opt/ccagency/unprivileged/', str(socket_dir) + '/')
              .replace(SEED_VENV, str(deploy_venv))
              .replace('uid = cc', 'uid = nobody').replace('gid = cc', 'gid = nogroup'))
    assert 'harakiri = 60' in ini and 'master = True' in ini and 'die-on-term = True' in ini
    ini = ini.replace('harakiri = 60', 'harakiri = 2')  # the limit, shortened to watch it act
    ini_path = work / 'ccagency-broker.ini'
    ini_path.write_text(ini)

    # started as the broker unit starts it: its ExecStart (ini path adapted) and its Environment
    exec_start, unit_env = _unit_service_lines(_read('systemd/ccagency-broker.service'))
    assert exec_start == ['/usr/bin/uwsgi', '/opt/ccagency/privileged/ccagency-broker.ini']
    broker_env = {'PATH': '/usr/sbin:/usr/bin:/sbin:/bin', 'HOME': str(home), 'LANG': 'C.UTF-8'}
    broker_env.update({key: value.replace(SEED_VENV, str(deploy_venv)) for key, value in unit_env.items()})
    controller_cmd, controller_env = _unit_service_lines(_read('systemd/ccagency-controller.service'))
    controller_cmd = [part.replace(SEED_VENV, str(deploy_venv)) for part in controller_cmd]
    controller_env = dict(controller_env, PATH='/usr/sbin:/usr/bin:/sbin:/bin', HOME=str(home))

    apache = None
    uwsgi = controller = None
    logs = []
    try:
        cert, key = _self_signed(work / 'ssl')
        uwsgi_log = open(work / 'uwsgi.log', 'wb')
        logs.append(uwsgi_log)
        uwsgi = subprocess.Popen([exec_start[0], str(ini_path)], env=broker_env, cwd=str(work),
                                 stdin=subprocess.DEVNULL, stdout=uwsgi_log, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        controller_log = open(work / 'controller.log', 'wb')
        logs.append(controller_log)
        controller = subprocess.Popen(controller_cmd, env=controller_env, cwd=str(work), stdin=subprocess.DEVNULL,
                                      stdout=controller_log, stderr=subprocess.STDOUT, start_new_session=True)

        apache = Apache(work)
        apache.listen_only('127.0.0.1:{}'.format(https_port))
        site = (_read('apache2/ccagency-broker.conf').replace('*:443', '127.0.0.1:{}'.format(https_port))
                .replace('/opt/ssl/cert.pem', str(cert)).replace('/opt/ssl/key.pem', str(key))
                .replace('/opt/ccagency/unprivileged/', str(socket_dir) + '/'))
        apache.enable_site('ccagency-broker', site)
        apache.start()

        url = 'https://127.0.0.1:{}/cc'.format(https_port)
        deadline = time.monotonic() + 60
        while True:
            try:
                response = requests.get(url + '/', verify=str(cert), timeout=5)
                if response.status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert uwsgi.poll() is None, 'uwsgi exited:\n' + (work / 'uwsgi.log').read_text(errors='replace')
            assert time.monotonic() < deadline, 'no answer through Apache:\n{}\n{}'.format(
                (work / 'uwsgi.log').read_text(errors='replace')[-3000:], apache.error_log()[-3000:])
            time.sleep(0.2)
        assert response.json() == {'status': 'ok'}
        # the site's headers for browsers, also on errors
        for answer in (response, requests.get(url + '/version', verify=str(cert), timeout=10)):
            assert answer.headers['Strict-Transport-Security'] == 'max-age=31536000'
            assert answer.headers['X-Content-Type-Options'] == 'nosniff'
        uwsgi_log_text = (work / 'uwsgi.log').read_text(errors='replace')
        assert 'setuid() to 65534' in uwsgi_log_text   # the ini's uid: workers do not run as root
        assert (socket_dir / 'ccagency-broker.sock').owner() == 'www-data'   # the ini's chown-socket

        # the operator CLI of the venv, reading ~/.config/cc-agency.yml like the services
        created = subprocess.run([str(deploy_venv / 'bin' / 'ccagency'), 'create-broker-user', '--username', 'op',
                                  '--password-stdin'], input='op-pw\n', capture_output=True, text=True,
                                 env=controller_env, timeout=60)
        assert created.returncode == 0, created.stderr

        assert requests.get(url + '/version', verify=str(cert), timeout=10).status_code == 401
        version = requests.get(url + '/version', auth=('op', 'op-pw'), verify=str(cert), timeout=10)
        assert version.status_code == 200 and version.json()['redVersion'] == '9', version.text

        file_server.add('/files/deploy-in.txt', b'deployed ')
        red = reds.red([reds.batch(file_server.base_url, name='deploy-in.txt', out='deploy-out.txt', word='ok',
                                   times=2)])
        posted = requests.post(url + '/red', json=red, auth=('op', 'op-pw'), verify=str(cert), timeout=30)
        assert posted.status_code == 200, posted.text
        experiment_id = posted.json()['experimentId']
        deadline = time.monotonic() + 90
        while True:
            batches = requests.get(url + '/batches', params={'experimentId': experiment_id}, auth=('op', 'op-pw'),
                                   verify=str(cert), timeout=10).json()
            if batches and batches[0]['state'] in ('succeeded', 'failed', 'cancelled'):
                break
            assert controller.poll() is None, 'controller exited:\n' + (work / 'controller.log').read_text()
            assert time.monotonic() < deadline, 'batch not done: {}\n{}'.format(
                batches, (work / 'controller.log').read_text(errors='replace')[-3000:])
            time.sleep(0.2)
        assert batches[0]['state'] == 'succeeded', batches
        assert file_server.uploaded('/uploads/deploy-out.txt') == b'deployed okok'
        stdout = requests.get('{}/batches/{}/stdout'.format(url, batches[0]['_id']), auth=('op', 'op-pw'),
                              verify=str(cert), timeout=10)
        assert stdout.status_code == 200 and stdout.text == 'processed 9 bytes\n'

        # harakiri: a request still running after the limit (here a bcrypt check of 16 rounds, seconds long) ends
        # with its worker, before the check could end; the master replaces the worker, and the broker goes on
        started = time.monotonic()
        auth.create_or_update_user(mongo_server.client()[db_name], 'slow', 'slow-pw', False, rounds=16)
        check_s = time.monotonic() - started  # what one check of that hash costs
        assert check_s > 3, check_s
        started = time.monotonic()
        slow = requests.get(url + '/version', auth=('slow', 'slow-pw'), verify=str(cert), timeout=60)
        # Apache's own error page (mod_proxy_uwsgi: the worker went away without an answer), not the broker's
        assert slow.status_code in (500, 502) and 'text/html' in slow.headers['Content-Type'], slow.text[:200]
        assert time.monotonic() - started < check_s, (time.monotonic() - started, check_s)
        deadline = time.monotonic() + 30
        while 'Respawned uWSGI worker' not in (work / 'uwsgi.log').read_text(errors='replace'):
            assert time.monotonic() < deadline, (work / 'uwsgi.log').read_text(errors='replace')[-3000:]
            time.sleep(0.2)
        assert 'HARAKIRI ON WORKER' in (work / 'uwsgi.log').read_text(errors='replace')
        assert requests.get(url + '/version', auth=('op', 'op-pw'), verify=str(cert), timeout=10).status_code == 200
    finally:
        if apache is not None:
            apache.stop()
        _stop_group(uwsgi)
        if controller is not None and pid_alive(controller.pid):
            terminate_pid(controller.pid, 20, controller, 'ccagency-controller')
        for log in logs:
            log.close()
        try:
            mongo_server.client().drop_database(db_name)
        except Exception:
            pass
        shutil.rmtree(str(work), ignore_errors=True)


def test_debian_python_is_the_one_of_the_uwsgi_plugin():
    """The ini's python3.11 path is right for Debian 12: the plugin links the interpreter that made the venv."""
    plugin = Path('/usr/lib/uwsgi/plugins/python3_plugin.so')
    assert plugin.exists(), 'apt-get install uwsgi-plugin-python3'
    linked = subprocess.run(['ldd', str(plugin)], capture_output=True, text=True, timeout=30).stdout
    assert 'libpython3.11' in linked, linked
