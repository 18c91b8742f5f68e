"""Fixtures of integration tests: a whole agency (controller + broker processes) on the test engine."""
import re
import uuid

import pytest

from localcluster.agency import Agency, agency_config


@pytest.fixture
def make_agency(mongo_server, request):
    """Factory: make_agency(nodes, **config) -> a started Agency on a fresh database; stopped after the test."""
    started = []

    def make(nodes, **kwargs):
        db_name = 't_{}_{}'.format(re.sub(r'\W+', '_', request.node.name)[:30], uuid.uuid4().hex[:8])
        agency = Agency(agency_config(mongo_server, db_name, nodes, **kwargs)).start()
        started.append(agency)
        return agency

    yield make
    for agency in started:
        agency.stop()


@pytest.fixture
def agency(make_agency, engine):
    """An agency with one node, the test engine, containers in host network mode (to reach loopback servers)."""
    return make_agency({'node1': {'base_url': engine.base_url, 'network': 'host'}})


@pytest.fixture
def alice(agency):
    agency.create_user('alice', 'alice-pw')
    return agency.session('alice', 'alice-pw')
