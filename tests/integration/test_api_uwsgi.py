"""The broker as the seed deploys it: Debian's uwsgi with the seed's ini (`plugins = python3`, a unix `socket`,
`wsgi-file` in the venv's site-packages, 4 processes, lazy-apps, `virtualenv` from $VIRTUAL_ENV), spoken to in the
uwsgi protocol over that socket, as Apache's mod_proxy_uwsgi does."""
import base64
import json
import subprocess
import time

import pytest
import yaml

from cc_agency import auth
from tests import reds
from tests.integration.api_support import PASSWORD, broker_conf
from localcluster.broker import UwsgiBroker, make_uwsgi_venv, uwsgi_request


@pytest.fixture(scope='module')
def venv(tmp_path_factory):
    return make_uwsgi_venv(str(tmp_path_factory.mktemp('uwsgi') / 'ccagency-venv'))


@pytest.fixture(scope='module')
def uwsgi_broker(venv, mongo_server, mongo_client):
    conf, db_name = broker_conf(mongo_server, 'uwsgi')
    broker = UwsgiBroker(conf, venv, processes=4).start()
    try:
        yield broker, mongo_client[db_name]
    finally:
        broker.stop()
        mongo_client.drop_database(db_name)


def call(broker, method, path, headers=None, body=None):
    data = json.dumps(body).encode() if body is not None else b''
    if body is not None:
        headers = dict(headers or {}, **{'Content-Type': 'application/json'})
    status, response_headers, content = uwsgi_request(broker.socket_path, method, path, headers, data)
    return status, response_headers, content


def test_seed_ini_serves_the_api_over_the_uwsgi_socket(uwsgi_broker):
    broker, db = uwsgi_broker
    auth.create_or_update_user(db, 'uwsgi-user', PASSWORD, False, rounds=4)

    status, headers, content = call(broker, 'GET', '/')
    assert status == 200 and json.loads(content) == {'status': 'ok'}

    basic = 'Basic ' + base64.b64encode('uwsgi-user:{}'.format(PASSWORD).encode()).decode()
    status, _, content = call(broker, 'GET', '/token', {'Authorization': basic})
    assert status == 200, content
    bearer = {'Authorization': 'Bearer ' + json.loads(content)['token']}

    status, _, content = call(broker, 'POST', '/red?disableRetry=true', bearer,
                              reds.red([reds.batch('http://127.0.0.1:9')] * 3))
    assert status == 200, content
    experiment_id = json.loads(content)['experimentId']
    status, headers, content = call(broker, 'GET', '/batches?experimentId={}&limit=2'.format(experiment_id), bearer)
    assert status == 200 and headers['Content-Type'] == 'application/json'
    assert len(json.loads(content)) == 2

    status, headers, content = call(broker, 'GET', '/no/such/route', bearer)
    assert status == 404 and json.loads(content)['message']
    status, _, _ = call(broker, 'GET', '/batches', {'Authorization': 'Bearer wrong'})
    assert status == 401


def test_every_worker_loads_its_own_app(uwsgi_broker):
    """lazy-apps: each of the 4 processes loads the app (and its own database client) after the fork."""
    broker, _ = uwsgi_broker
    deadline = time.monotonic() + 30
    while True:
        ready = {line.rsplit('pid: ', 1)[1].split()[0] for line in broker.log().splitlines()
                 if line.startswith('WSGI app 0') and 'pid: ' in line}
        if len(ready) == 4 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(ready) == 4, broker.log()[-3000:]


def test_wrong_config_stops_uwsgi_with_one_line_naming_the_key(venv, uwsgi_broker, tmp_path):
    broker, _ = uwsgi_broker
    conf = yaml.safe_load(yaml.safe_dump(broker.conf))
    conf['mongo']['port'] = 'x'
    bad = UwsgiBroker(conf, venv, processes=1, work_dir=str(tmp_path))
    result = subprocess.run(bad.command(), env=bad.env(), cwd=bad.work_dir, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith('ccagency-broker:')]
    assert lines == ["ccagency-broker: config key mongo.port: 'x' is not of type 'integer'"]
    assert 'Traceback' not in result.stdout + result.stderr


def test_pip_install_gives_the_dashboard_with_all_its_files(uwsgi_broker, venv):
    """`pip install .` alone (no build step) puts every file of the dashboard into the package, and the broker
    under uwsgi serves them."""
    from pathlib import Path
    from localcluster.broker import REPO, site_packages
    source = Path(REPO) / 'cc_agency' / 'broker' / 'ui' / 'static'
    installed = Path(site_packages(venv)) / 'cc_agency' / 'broker' / 'ui' / 'static'
    names = sorted(str(p.relative_to(source)) for p in source.rglob('*') if p.is_file())
    assert {'index.html', 'app.js', 'style.css', 'views/experiment.js'} <= set(names)
    assert sorted(str(p.relative_to(installed)) for p in installed.rglob('*') if p.is_file()) == names
    broker, _ = uwsgi_broker
    for name in names:
        status, headers, content = call(broker, 'GET', '/ui/' + name)
        assert status == 200 and content == (source / name).read_bytes(), name
        assert "default-src 'self'" in headers['Content-Security-Policy']
    status, headers, content = call(broker, 'GET', '/ui/')
    assert status == 200 and headers['Content-Type'].startswith('text/html') and b'app.js' in content
