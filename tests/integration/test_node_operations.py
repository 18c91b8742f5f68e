"""Node operations on a real agency of three engines: an admin cordons a node (PATCH /nodes/<name>) and nothing new
is placed there while it is; the operator uncordons it from the shell (ccagency node) and it takes work again."""
from collections import Counter

from tests.integration.cluster import batches_of, command_red, nodes_of, submit, user_session, wait_nodes_online

SLEEP = 'import time; time.sleep({})'


def test_a_cordoned_node_gets_nothing_new_until_it_is_uncordoned(make_agency, engines3):
    agency = make_agency(nodes_of(engines3))
    agency.create_user('root', 'root-pw', admin=True)
    admin = agency.session('root', 'root-pw')
    alice = user_session(agency)
    wait_nodes_online(agency, admin, ['node1', 'node2', 'node3'])

    response = admin.patch(agency.url + '/nodes/node2', json={'schedulable': False}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()['nodeName'] == 'node2' and response.json()['schedulable'] is False
    shown = {node['nodeName']: node for node in admin.get(agency.url + '/nodes', timeout=10).json()}
    assert {name: node['schedulable'] for name, node in shown.items()} == {'node1': True, 'node2': False,
                                                                           'node3': True}
    assert 'cordoned by admin root' in shown['node2']['history'][-1]['debugInfo'][0]

    experiment_id = submit(agency, alice, command_red([SLEEP.format(0.3)] * 12))
    batches = batches_of(agency, alice, experiment_id, 12)
    assert [b['state'] for b in batches] == ['succeeded'] * 12
    assert set(Counter(b['node'] for b in batches)) == {'node1', 'node3'}

    listed = agency.ccagency('node', 'list')
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines()[1:]}
    assert rows['node2'][1:3] == ['online', 'cordoned'] and rows['node1'][1:3] == ['online', 'enabled']

    result = agency.ccagency('node', 'uncordon', 'node2')
    assert result.returncode == 0 and 'Node node2 uncordoned' in result.stdout, result.stderr
    experiment_id = submit(agency, alice, command_red([SLEEP.format(0.3)] * 12))
    batches = batches_of(agency, alice, experiment_id, 12)
    assert 'node2' in Counter(b['node'] for b in batches)  # spread: the idle node gets its part again


def test_node_changes_are_for_admins_with_a_clear_answer(make_agency, engine):
    agency = make_agency(nodes_of([engine]))
    agency.create_user('root', 'root-pw', admin=True)
    admin = agency.session('root', 'root-pw')
    alice = user_session(agency)
    wait_nodes_online(agency, admin, [engine.name])
    url = agency.url + '/nodes/' + engine.name
    refused = alice.patch(url, json={'schedulable': False}, timeout=10)
    assert refused.status_code == 403 and 'admins' in refused.json()['message']
    for body in ({}, {'schedulable': 'no'}, {'schedulable': False, 'other': 1}, [False]):
        response = admin.patch(url, json=body, timeout=10)
        assert response.status_code == 400 and 'schedulable' in response.json()['message'], body
    assert admin.patch(url, data='not json', timeout=10).status_code == 400
    missing = admin.patch(agency.url + '/nodes/nosuchnode', json={'schedulable': False}, timeout=10)
    assert missing.status_code == 404 and 'nosuchnode' in missing.json()['message']
    assert all(node['schedulable'] for node in admin.get(agency.url + '/nodes', timeout=10).json())
    result = agency.ccagency('node', 'cordon', 'nosuchnode')
    assert result.returncode == 1 and 'no node "nosuchnode" (known: {})'.format(engine.name) in result.stderr
    result = agency.ccagency('node', 'cordon')
    assert result.returncode == 1 and 'name the node to cordon' in result.stderr
