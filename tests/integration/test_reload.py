"""SIGHUP on a real agency: a node added to the configuration comes online and takes work, a removed one gets
nothing new and leaves once its running batch finished; a wrong file changes nothing."""
import os
import signal
import time

import yaml

from tests.integration.cluster import batches_of, command_red, nodes_of, submit, user_session, wait_nodes_online

SLEEP = 'import time; time.sleep({})'


def rewrite_and_reload(agency, nodes=None, conf=None):
    conf = conf if conf is not None else dict(agency.conf)
    if nodes is not None:
        conf['controller']['docker']['nodes'] = nodes
    with open(agency.conf_path, 'w') as f:
        yaml.safe_dump(conf, f)
    os.kill(agency.controller.pid, signal.SIGHUP)


def node_names(agency, session):
    return {node['nodeName'] for node in session.get(agency.url + '/nodes', timeout=10).json()}


def test_sighup_adds_a_node_and_drains_a_removed_one(make_agency, engines3):
    node1, node2, node3 = engines3
    agency = make_agency(nodes_of([node1, node2]))
    alice = user_session(agency)
    wait_nodes_online(agency, alice, ['node1', 'node2'])
    long_id = submit(agency, alice, command_red([SLEEP.format(6)]))
    deadline = time.time() + 30
    while True:
        running = alice.get(agency.url + '/batches', params={'state': 'processing'}, timeout=10).json()
        if running:
            break
        assert time.time() < deadline, 'the long batch did not start'
        time.sleep(0.1)
    removed = running[0]['node']
    kept = node2 if removed == 'node1' else node1

    rewrite_and_reload(agency, nodes=nodes_of([kept, node3]))
    wait_nodes_online(agency, alice, [kept.name, 'node3'])
    short_id = submit(agency, alice, command_red([SLEEP.format(0.2)] * 8))
    short = batches_of(agency, alice, short_id, 8)
    assert [b['state'] for b in short] == ['succeeded'] * 8
    assert {b['node'] for b in short} == {kept.name, 'node3'}  # the new node takes work, the drained one none
    [long] = batches_of(agency, alice, long_id, 1)
    assert long['state'] == 'succeeded' and long['node'] == removed  # its running batch finished there
    deadline = time.time() + 20
    while removed in node_names(agency, alice):
        assert time.time() < deadline, 'the drained node was not removed'
        time.sleep(0.2)
    assert node_names(agency, alice) == {kept.name, 'node3'}


def test_a_wrong_file_on_sighup_changes_nothing(make_agency, engine):
    agency = make_agency(nodes_of([engine]))
    alice = user_session(agency)
    wait_nodes_online(agency, alice, [engine.name])
    conf = yaml.safe_load(open(agency.conf_path))
    conf['controller']['scheduling']['strategy'] = 'fastest'
    conf['controller']['docker']['nodes'] = {}
    rewrite_and_reload(agency, conf=conf)
    deadline = time.time() + 10
    while 'reload refused' not in agency.log('controller'):
        assert time.time() < deadline, agency.log('controller')[-2000:]
        time.sleep(0.1)
    assert "config key controller.scheduling.strategy: 'fastest' is not one of" in agency.log('controller')
    experiment_id = submit(agency, alice, command_red(['pass']))
    assert [b['state'] for b in batches_of(agency, alice, experiment_id, 1)] == ['succeeded']
    assert node_names(agency, alice) == {engine.name}
