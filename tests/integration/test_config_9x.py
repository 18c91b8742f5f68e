"""A cc-agency 9.x configuration file runs the agency: the broker wakes the controller through
`controller.bind_socket_path` (ZeroMQ over a unix socket, `ipc://`), with real broker and controller processes.

The scheduling timer is set to 60 s, so a batch that is scheduled within seconds of POST /red was scheduled because
the broker's wake-up reached the controller over that socket.
"""
import os
import re
import shutil
import stat
import tempfile
import time

import yaml

from tests import reds
from localcluster.agency import Agency, agency_config

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'configs')
TIMER_S = 60


def nine_x_config(mongo_server, engine, socket_path, db_name):
    """9.3's documented file (tests/configs/cc-agency-9.3.yml) on this machine's database and engine."""
    with open(os.path.join(CONFIGS, 'cc-agency-9.3.yml')) as f:
        conf = yaml.safe_load(f)
    conf['controller']['bind_socket_path'] = socket_path
    conf['controller']['docker']['nodes'] = {'node1': {'base_url': engine.base_url, 'network': 'host'}}
    conf['controller']['scheduling'] = {'pass_interval_seconds': TIMER_S}
    # the test database has no users; the test's own tuning of the seed config (bcrypt rounds) is kept
    conf['mongo'] = {'host': mongo_server.host, 'port': mongo_server.port, 'db': db_name}
    conf['broker']['auth']['bcrypt_rounds'] = agency_config(mongo_server, db_name, {})['broker']['auth'][
        'bcrypt_rounds']
    return conf


def test_broker_wakes_the_controller_over_the_9_x_unix_socket(mongo_server, engine, file_server):
    work_dir = tempfile.mkdtemp(prefix='cc9x-')   # short: a unix socket path has at most 107 bytes
    socket_path = os.path.join(work_dir, 'run', 'ctl.sock')
    conf = nine_x_config(mongo_server, engine, socket_path, 't_config_9x_{}'.format(os.getpid()))
    agency = Agency(conf, work_dir=work_dir)
    try:
        agency.start()
        agency.create_user('nine', 'nine-pw')
        session = agency.session('nine', 'nine-pw')
        deadline = time.monotonic() + 30
        while not [n for n in session.get(agency.url + '/nodes', timeout=10).json() if n['state'] == 'online']:
            assert time.monotonic() < deadline, agency.log('controller')
            time.sleep(0.1)
        time.sleep(1)   # the wake-up of the node going online is spent

        assert stat.S_ISSOCK(os.stat(socket_path).st_mode)
        assert stat.S_IMODE(os.stat(os.path.dirname(socket_path)).st_mode) == 0o700
        log = agency.log('controller')
        assert 'listening for wake-ups on ipc://{}'.format(socket_path) in log
        assert len(re.findall(r'config key trustee \(cc-agency 9.x\) has no effect here', log)) == 1
        assert 'SECRET' not in log

        file_server.add('/files/nine-in.txt', b'nine ')
        red = reds.red([reds.batch(file_server.base_url, name='nine-in.txt', out='nine-out.txt', word='x', times=2)])
        t0 = time.monotonic()
        response = session.post(agency.url + '/red', json=red, timeout=30)
        assert response.status_code == 200, response.text
        [batch] = agency.wait_terminal(session, response.json()['experimentId'], 1, timeout=TIMER_S / 2)
        took_s = time.monotonic() - t0
        assert batch['state'] == 'succeeded', batch['history'][-1]
        assert took_s < TIMER_S / 2   # not the timer: the wake-up
        assert file_server.uploaded('/uploads/nine-out.txt') == b'nine xx'
    finally:
        agency.stop()
        with agency.database() as db:
            db.client.drop_database(conf['mongo']['db'])
        shutil.rmtree(work_dir, ignore_errors=True)
