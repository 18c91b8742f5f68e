"""Engines over TCP with TLS: verified nodes run batches; a node whose certificate does not match (other CA, other
host name) is offline with a reason that says so, and the other nodes go on working."""
import os
import tempfile

import pytest

from tests.integration.cluster import batches_of, command_red, submit, user_session, wait_nodes_online
from localcluster import DockerEngine, load_images, make_ca, stop_engines


@pytest.fixture(scope='module')
def tls_engines():
    work = tempfile.mkdtemp(prefix='cca-tls-')
    named_dir = os.path.join(work, 'named')
    make_ca(named_dir, san='DNS:engine.test')  # a certificate that does not name 127.0.0.1
    engines = [DockerEngine(name='tls-ip', tls=True), DockerEngine(name='tls-named', tls=True, tls_dir=named_dir)]
    try:
        for engine in engines:
            engine.start()
            client = engine.client(tcp=False)
            try:
                load_images([client])
            finally:
                client.close()
        yield engines, make_ca(os.path.join(work, 'other-ca'))
    finally:
        stop_engines(engines)


def tls(engine, ca=None, **extra):
    files = engine.tls_files
    return dict({'verify': ca or files['ca.pem'], 'client_cert': [files['cert.pem'], files['key.pem']]}, **extra)


def test_tls_nodes_work_and_a_wrong_certificate_is_offline_with_a_clear_reason(make_agency, tls_engines):
    (by_ip, by_name), other_ca = tls_engines
    nodes = {
        'secure': {'base_url': by_ip.tcp_url, 'tls': tls(by_ip), 'network': 'none'},
        'no-hostname-check': {'base_url': by_name.tcp_url, 'tls': tls(by_name, assert_hostname=False),
                              'network': 'none'},
        'wrong-ca': {'base_url': by_ip.tcp_url, 'tls': tls(by_ip, ca=other_ca['ca.pem']), 'network': 'none'},
        'wrong-name': {'base_url': by_name.tcp_url, 'tls': tls(by_name), 'network': 'none'},
    }
    agency = make_agency(nodes)
    alice = user_session(agency)
    wait_nodes_online(agency, alice, ['secure', 'no-hostname-check'])
    batches = batches_of(agency, alice, submit(agency, alice, command_red(['pass'] * 6)), 6)
    assert [b['state'] for b in batches] == ['succeeded'] * 6
    assert {b['node'] for b in batches} == {'secure', 'no-hostname-check'}

    nodes = {n['nodeName']: n for n in alice.get(agency.url + '/nodes').json()}
    expected = {'wrong-ca': (by_ip.tcp_url, "the engine's certificate is not signed by the CA in tls.verify"),
                'wrong-name': (by_name.tcp_url, "the engine's certificate does not name this host (see "
                                                "tls.assert_hostname)")}
    for name, (url, reason) in expected.items():
        assert nodes[name]['state'] == 'offline'
        reasons = ' '.join(line for entry in nodes[name]['history'] for line in entry.get('debugInfo') or [])
        assert 'TLS with {} failed: {}'.format(url, reason) in reasons, reasons
