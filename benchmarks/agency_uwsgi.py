"""This project as the seed deploys it, for benchmarks: the controller process and the broker under uwsgi.

localcluster/agency.py runs the broker on the development server; a comparison with another agency's uwsgi
broker needs this one under the same server with the same number of processes. The broker is
localcluster.broker.UwsgiBroker (the seed's ini plus an http-socket) from a venv of Debian's python3 with the
checked-out code installed (`make_uwsgi_venv`, reinstalled on each use so it is the current code); the
controller runs from the checkout (`python -m cc_agency.controller.main`), as the tests run it. Both read the
configuration file that UwsgiBroker writes.
"""
import os
import subprocess
import sys
import tempfile

import pymongo
import requests

from cc_agency import auth
from localcluster.agency import REPO
from localcluster.broker import UwsgiBroker, make_uwsgi_venv
from localcluster.processes import terminate_pid

DEFAULT_VENV = os.path.join(os.path.expanduser('~'), '.cache', 'cc-agency-peer', 'venv-this')


def ensure_venv(path=DEFAULT_VENV):
    return make_uwsgi_venv(path)


class UwsgiAgency:
    """Controller + uwsgi broker (`broker_processes`) for the configuration `conf` (the seed's format)."""

    def __init__(self, conf, venv, broker_processes=2, log_level='INFO', work_dir=None):
        self.conf = conf
        self.venv = venv
        self.work_dir = work_dir or tempfile.mkdtemp(prefix='cca-peer-this-')
        self.broker_processes = broker_processes
        self.log_level = log_level
        self.broker = None
        self.controller = None
        self.controller_log_path = os.path.join(self.work_dir, 'controller.log')
        self._log = None

    @property
    def url(self):
        return self.broker.url

    def start(self):
        try:
            self.broker = UwsgiBroker(self.conf, self.venv, processes=self.broker_processes, work_dir=self.work_dir)
            self._log = open(self.controller_log_path, 'ab')
            self.controller = subprocess.Popen(
                [sys.executable, '-m', 'cc_agency.controller.main', '-c', self.broker.conf_path,
                 '--log-level', self.log_level], cwd=REPO, env=dict(os.environ, PYTHONUNBUFFERED='1', PYTHONPATH=REPO),
                stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
            self.broker.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        errors = []
        for stop in (lambda: self.broker and self.broker.stop(),
                     lambda: self.controller and terminate_pid(self.controller.pid, 15, self.controller,
                                                               'controller')):
            try:
                stop()
            except Exception as e:  # stop the other all the same
                errors.append(e)
        if self._log is not None:
            self._log.close()
            self._log = None
        if errors:
            raise errors[0]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def controller_log(self):
        with open(self.controller_log_path, errors='replace') as f:
            return f.read()

    def pids(self):
        return {'controller': self.controller.pid, 'brokers': [self.broker.process.pid]}

    def create_user(self, username, password, admin=False):
        """What `ccagency create-broker-user` writes, with the configured bcrypt cost (the seed's default: 12)."""
        client = pymongo.MongoClient(self.conf['mongo']['host'], self.conf['mongo']['port'], directConnection=True)
        try:
            auth.create_or_update_user(client[self.conf['mongo']['db']], username, password, admin,
                                       self.conf['broker']['auth'].get('bcrypt_rounds', 12))
        finally:
            client.close()

    def bearer(self, username, password):
        """Headers with a token from GET /token (Basic)."""
        response = requests.get(self.url + '/token', auth=(username, password), timeout=30)
        response.raise_for_status()
        return {'Authorization': 'Bearer ' + response.json()['token']}
