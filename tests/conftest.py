"""pytest fixtures that start real services (localcluster) and stop them by PID, also when a test fails.

Session scope (each started only when a test first asks for it):
    mongo_server   MongoServer: secantusd-py on 127.0.0.1:<free port>, temporary storage
    mongo_client   pymongo.MongoClient connected to mongo_server
    engine         DockerEngine (unix socket only) with TEST_IMAGE and BUSYBOX_IMAGE loaded
    engine_client  docker.DockerClient for engine
    engines3       [DockerEngine] x3 (node1..node3, unix socket only), both images loaded, identical image IDs
    file_server    FileServer on 127.0.0.1:<free port>, no auth
Function scope:
    mongo_db       pymongo Database with a fresh name, dropped after the test

Tests that use any of these (or live in tests/integration) get the ``integration`` marker, so
``python3 -m pytest -m "not integration"`` runs only what needs no service. Tests in tests/unit must not use them.
"""

import os
import re
import uuid

import pytest

from localcluster import FileServer, MongoServer, DockerEngine, load_images_into, start_engines, stop_engines

SERVICE_FIXTURES = {'mongo_server', 'mongo_client', 'mongo_db', 'engine', 'engine_client', 'engines3',
                    'file_server'}


def pytest_collection_modifyitems(config, items):
    misplaced = []
    for item in items:
        path = str(item.fspath).replace('\\', '/')
        uses_services = bool(SERVICE_FIXTURES.intersection(getattr(item, 'fixturenames', ())))
        if uses_services or '/tests/integration/' in path:
            item.add_marker(pytest.mark.integration)
        if uses_services and '/tests/unit/' in path:
            misplaced.append(item.nodeid)
    if misplaced:
        raise pytest.UsageError('tests in tests/unit must not need services; move these to tests/integration: '
                                + ', '.join(misplaced))


def pytest_sessionfinish(session, exitstatus):
    """With CC_FAIL_ON_SKIP (tests/run.sh, so CI), a skipped test fails the run: it proves nothing."""
    reporter = session.config.pluginmanager.get_plugin('terminalreporter')
    skipped = len(reporter.stats.get('skipped', ())) if reporter else 0
    if os.environ.get('CC_FAIL_ON_SKIP') and skipped and session.exitstatus == 0:
        reporter.write_line('{} test(s) skipped: with CC_FAIL_ON_SKIP that is a failure'.format(skipped), red=True)
        session.exitstatus = 1


# ---------------------------------------------------------------------------------------------------- MongoDB

@pytest.fixture(scope='session')
def mongo_server():
    server = MongoServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()
        server.remove()


@pytest.fixture(scope='session')
def mongo_client(mongo_server):
    client = mongo_server.client()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def mongo_db(mongo_client, request):
    """A database no other test uses (named after the test), dropped afterwards."""
    name = 't_{}_{}'.format(re.sub(r'\W+', '_', request.node.name)[:30], uuid.uuid4().hex[:8])
    try:
        yield mongo_client[name]
    finally:
        mongo_client.drop_database(name)


# ---------------------------------------------------------------------------------------------------- Docker

@pytest.fixture(scope='session')
def engine():
    node = DockerEngine(name='engine')
    try:
        node.start()
        load_images_into([node])
        yield node
    finally:
        node.stop(remove=True)


@pytest.fixture(scope='session')
def engine_client(engine):
    client = engine.client()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope='session')
def engines3():
    nodes = start_engines(3)
    try:
        load_images_into(nodes)
        yield nodes
    finally:
        stop_engines(nodes)


# ---------------------------------------------------------------------------------------------------- HTTP

@pytest.fixture(scope='session')
def file_server():
    server = FileServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()
