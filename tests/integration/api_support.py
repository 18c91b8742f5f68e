"""Shared by the API tests: a broker process (no controller) on its own database of the session's SecantusDB, and
helpers to make users, tokens and experiments through the real HTTP API.

Import the fixture into a test module (``from tests.integration.api_support import broker``); it is module-scoped
(one broker process per test file). Tests keep apart by using their own usernames (``api.new_user()``).
"""
import re
import uuid

import pytest
import requests

from cc_agency import auth
from tests import reds
from localcluster.agency import agency_config
from localcluster.broker import BrokerServer

PASSWORD = 'pw-{}'.format(uuid.uuid4().hex[:8])


class Api:
    """A running broker, its database (pymongo), and users made for the test."""

    def __init__(self, server, db):
        self.server = server
        self.url = server.url
        self.db = db
        self.conf = server.conf

    def new_user(self, prefix='user', admin=False, password=PASSWORD):
        """A user no other test uses; returns its name (password: `password`)."""
        username = '{}-{}'.format(prefix, uuid.uuid4().hex[:8])
        auth.create_or_update_user(self.db, username, password, admin, rounds=4)
        return username

    def token(self, username, password=PASSWORD):
        response = requests.get(self.url + '/token', auth=(username, password), timeout=10)
        assert response.status_code == 200, response.text
        return response.json()['token']

    def session(self, username, password=PASSWORD):
        """A requests.Session that sends a Bearer token fetched once with Basic auth."""
        session = requests.Session()
        session.headers['Authorization'] = 'Bearer ' + self.token(username, password)
        return session

    def user_session(self, prefix='user', admin=False):
        username = self.new_user(prefix, admin)
        session = self.session(username)
        session.username = username
        return session

    def submit(self, session, batches=1, **params):
        """POST /red of an experiment with `batches` batches; returns its id."""
        response = session.post(self.url + '/red', json=reds.red_of(batches), params=params, timeout=60)
        assert response.status_code == 200, response.text
        return response.json()['experimentId']

    def get(self, session, path, **params):
        return session.get(self.url + path, params=params, timeout=30)


def broker_conf(mongo_server, name, **extra):
    """A configuration (no nodes) on a fresh database; `extra`: dotted keys, e.g. broker.auth.block_for_seconds."""
    db_name = 'api_{}_{}'.format(re.sub(r'\W+', '_', name)[-20:], uuid.uuid4().hex[:8])
    return agency_config(mongo_server, db_name, {}, extra=extra), db_name


def start_broker(mongo_server, name, **extra):
    conf, db_name = broker_conf(mongo_server, name, **extra)
    return BrokerServer(conf).start(), db_name


@pytest.fixture(scope='module')
def broker(mongo_server, mongo_client, request):
    """An Api: one broker process for the test module, on a fresh database dropped afterwards."""
    server, db_name = start_broker(mongo_server, request.module.__name__)
    try:
        yield Api(server, mongo_client[db_name])
    finally:
        server.stop()
        mongo_client.drop_database(db_name)
