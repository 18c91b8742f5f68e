"""Smoke tests proving the test services are real: containers of the registry-free images run on the engines,
red-connector-http moves files to and from the HTTP file server, SecantusDB stores documents and survives restarts,
engines are distinct, and the fault controls (kill, pause) behave as TESTING.md describes."""

import hashlib
import io
import json
import os
import tarfile
import time

import pytest
import requests

from localcluster import BUSYBOX_IMAGE, TEST_IMAGE, DockerEngine, FileServer, MongoServer, load_images

pytestmark = pytest.mark.integration


def tar_of(files):
    """A tar archive {path: bytes} for put_archive (paths relative to the target directory)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w') as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def file_from(container, path):
    stream, _stat = container.get_archive(path)
    with tarfile.open(fileobj=io.BytesIO(b''.join(stream))) as tar:
        return tar.extractfile(tar.getmembers()[0]).read()


def run(client, command, files=None, image=TEST_IMAGE, network_mode='host', fetch=None, **kwargs):
    """create / put_archive / start / wait / remove (no auto_remove: see TESTING.md).

    Returns (exit code, stdout, stderr, fetched bytes of the file at path `fetch` or None)."""
    container = client.containers.create(image, command, network_mode=network_mode, **kwargs)
    try:
        if files:   # put_archive works on a created container, before start
            assert container.put_archive('/', tar_of(files))
        container.start()
        code = container.wait(timeout=60)['StatusCode']
        out = container.logs(stdout=True, stderr=False)
        err = container.logs(stdout=False, stderr=True)
        fetched = file_from(container, fetch) if fetch else None
        return code, out, err, fetched
    finally:
        container.remove(force=True)


def test_connector_cli_version(engine_client):
    code, out, err, _ = run(engine_client, ['red-connector-http', 'cli-version'])
    assert (code, out) == (0, b'1\n'), err


def test_image_basics(engine_client):
    code, out, err, _ = run(engine_client, ['sh', '-c', 'echo $PATH; id -u; python3 -c "import json, ssl; print(7*6)"'],
                            user='1000:1000', network_mode='none')
    assert code == 0, err
    assert out.decode().split() == ['/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', '1000', '42']
    code, out, err, _ = run(engine_client, ['cat', '/etc/passwd'], image=BUSYBOX_IMAGE, network_mode='none')
    assert code == 0 and b'user:x:1000:1000' in out, err


def test_receive_file_from_file_server(engine_client, file_server):
    data = os.urandom(300 * 1024)
    file_server.add('/inputs/data.bin', data)
    access = json.dumps(file_server.access('/inputs/data.bin')).encode()
    code, out, err, fetched = run(
        engine_client, ['sh', '-c', 'red-connector-http receive-file-validate /cc/access.json && '
                                    'red-connector-http receive-file /cc/access.json /cc/data.bin'],
        files={'cc/access.json': access}, fetch='/cc/data.bin')
    assert code == 0, err
    assert hashlib.sha256(fetched).hexdigest() == hashlib.sha256(data).hexdigest()
    assert [r.status for r in file_server.requests_for('/inputs/data.bin', 'GET')] == [200]


@pytest.mark.parametrize('method', [None, 'PUT'])
def test_send_file_to_file_server(engine_client, file_server, method):
    data = os.urandom(50 * 1024)
    path = '/outputs/{}/result.bin'.format(method or 'default')
    access = json.dumps(file_server.access(path, method=method)).encode()
    code, out, err, _ = run(
        engine_client, ['red-connector-http', 'send-file', '/cc/access.json', '/cc/result.bin'],
        files={'cc/access.json': access, 'cc/result.bin': data})
    assert code == 0, err
    assert file_server.uploaded(path) == data
    assert [r.method for r in file_server.requests_for(path)] == [method or 'POST']


def test_file_server_basic_auth(engine_client):
    with FileServer(files={'/secret.txt': b'top secret\n'}, auth=('alice', 's3cret')) as server:
        good = json.dumps(server.access('/secret.txt')).encode()
        bad = json.dumps(dict(server.access('/secret.txt'), auth={'username': 'alice', 'password': 'x'})).encode()
        code, _, err, fetched = run(engine_client, ['red-connector-http', 'receive-file', '/a.json', '/f'],
                                    files={'a.json': good}, fetch='/f')
        assert code == 0 and fetched == b'top secret\n', err
        code, _, err, _ = run(engine_client, ['red-connector-http', 'receive-file', '/a.json', '/f'],
                              files={'a.json': bad})
        assert code != 0 and b'401' in err
        assert [(r.user, r.status) for r in server.requests] == [('alice', 200), ('alice', 401)]
        assert requests.get(server.url('/secret.txt')).status_code == 401


def test_mongo_insert_find(mongo_db):
    mongo_db.batches.insert_many([{'_id': 'b1', 'state': 'registered'}, {'_id': 'b2', 'state': 'processing'}])
    result = mongo_db.batches.update_one({'_id': 'b1', 'state': 'registered'}, {'$set': {'state': 'scheduled'}})
    assert result.modified_count == 1
    assert mongo_db.batches.find_one({'_id': 'b1'}) == {'_id': 'b1', 'state': 'scheduled'}
    assert sorted(d['_id'] for d in mongo_db.batches.find({}, {'_id': 1})) == ['b1', 'b2']


def test_mongo_restart_and_kill_keep_data():
    from pymongo import WriteConcern
    with MongoServer() as server:
        port = server.port
        client = server.client()
        client.db.get_collection('c', write_concern=WriteConcern(j=True)).insert_one({'_id': 1})
        client.close()
        server.kill()
        assert not server.running
        server.start()
        client = server.client()
        assert client.db.c.find_one({'_id': 1}) == {'_id': 1}   # journaled write survived kill -9
        client.db.c.insert_one({'_id': 2})
        client.close()
        server.restart()
        assert server.port == port
        client = server.client()
        assert sorted(d['_id'] for d in client.db.c.find()) == [1, 2]
        client.close()
        server.kill()   # quicker than the ~2 s of a clean shutdown; the with block then removes the data


def test_three_engines_are_distinct(engines3):
    clients = [node.client() for node in engines3]
    try:
        infos = [client.info() for client in clients]
        assert len({info['ID'] for info in infos}) == 3
        assert [sorted(info['Labels']) for info in infos] == [['cc-test-node=node1'], ['cc-test-node=node2'],
                                                               ['cc-test-node=node3']]
        for ref in (TEST_IMAGE, BUSYBOX_IMAGE):
            assert len({client.images.get(ref).id for client in clients}) == 1
        code, out, err, _ = run(clients[2], ['echo', 'hello'], image=BUSYBOX_IMAGE, network_mode='none')
        assert (code, out) == (0, b'hello\n'), err
    finally:
        for client in clients:
            client.close()


def test_engine_faults_kill_and_pause():
    """kill -9 of dockerd with --live-restore: the container survives, start() works despite the stale pidfile;
    SIGSTOP makes calls time out until SIGCONT."""
    node = DockerEngine(name='faulty', extra_args=['--live-restore'])
    try:
        node.start()
        client = node.client(timeout=5)
        load_images([client], refs=[BUSYBOX_IMAGE])
        container = client.containers.run(BUSYBOX_IMAGE, ['sleep', '600'], network_mode='none', detach=True)
        node.kill()
        assert os.path.exists(node.pidfile) and not node.running
        with pytest.raises(requests.exceptions.ConnectionError):
            client.ping()
        node.start()
        assert client.containers.get(container.id).status == 'running'
        node.pause()
        t0 = time.monotonic()
        with pytest.raises(requests.exceptions.ReadTimeout):
            node.client(timeout=1).ping()
        assert time.monotonic() - t0 < 4
        node.resume()
        assert client.ping()
        client.close()
    finally:
        node.stop(remove=True)
    assert not os.path.exists(node.base_dir)


def test_engine_over_tls(monkeypatch):
    with DockerEngine(name='tls', tls=True) as node:
        # requests would use this instead of the engine's CA if the client honoured the environment
        monkeypatch.setenv('REQUESTS_CA_BUNDLE', node.tls_files['cert.pem'])
        client = node.client()
        try:
            assert client.api.base_url.startswith('https://127.0.0.1:')
            assert client.ping()
        finally:
            client.close()
        with pytest.raises(requests.exceptions.ConnectionError):   # without a client certificate: refused
            requests.get('https://127.0.0.1:{}/_ping'.format(node.tcp_port), verify=node.tls_files['ca.pem'],
                         timeout=5)
