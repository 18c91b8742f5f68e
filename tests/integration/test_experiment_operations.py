"""Experiment operations on a real agency: cancel all unfinished batches of an experiment, and resubmit the batches
that failed from the same RED, linked both ways; other REDs and others' experiments are refused clearly."""
import time

from tests.integration.cluster import LABEL, batches_of, command_red, nodes_of, submit, user_session, wait_nodes_online

SLEEP = 'import time; time.sleep({})'
FAIL = 'raise SystemExit(3)'


def test_cancel_an_experiment_cancels_what_has_not_ended(make_agency, engine, engine_client):
    agency = make_agency(nodes_of([engine]))
    alice, bob = user_session(agency, 'alice'), user_session(agency, 'bob')
    wait_nodes_online(agency, alice, [engine.name])
    done_id = submit(agency, alice, command_red(['pass']))
    assert [b['state'] for b in batches_of(agency, alice, done_id, 1)] == ['succeeded']
    experiment_id = submit(agency, alice, command_red([SLEEP.format(60)] * 3 + ['pass'],
                                                      execution_settings={'batchConcurrencyLimit': 2}))
    deadline = time.time() + 30
    while len(alice.get(agency.url + '/batches', params={'state': 'processing', 'experimentId': experiment_id},
                        timeout=10).json()) < 2:
        assert time.time() < deadline, 'the batches did not start'
        time.sleep(0.1)
    url = agency.url + '/experiments/' + experiment_id
    assert bob.delete(url, timeout=10).status_code == 404  # not his
    response = alice.delete(url, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json() == {'experimentId': experiment_id, 'cancelled': 4}  # two running, two queued
    batches = batches_of(agency, alice, experiment_id, 4, timeout=10)
    assert [b['state'] for b in batches] == ['cancelled'] * 4
    assert all(b['history'][-1]['debugInfo'] == ['experiment cancelled by user'] for b in batches)
    deadline = time.time() + 15
    # the low-level list: containers.list() inspects each one, which fails for one removed meanwhile
    while engine_client.api.containers(all=True, filters={'label': LABEL}):
        assert time.time() < deadline, 'the containers of the cancelled batches were not removed'
        time.sleep(0.2)
    assert alice.delete(url, timeout=10).json()['cancelled'] == 0  # nothing left to cancel
    assert alice.delete(agency.url + '/experiments/' + done_id, timeout=10).json()['cancelled'] == 0
    assert alice.delete(agency.url + '/experiments/nonsense', timeout=10).status_code == 400


def test_resubmit_runs_the_failed_batches_again_as_a_linked_experiment(make_agency, engine):
    agency = make_agency(nodes_of([engine]), attempts_to_fail=1)
    alice, bob = user_session(agency, 'alice'), user_session(agency, 'bob')
    wait_nodes_online(agency, alice, [engine.name])
    red = command_red(['pass', FAIL, 'print(2)', FAIL])
    original_id = submit(agency, alice, red)
    original = batches_of(agency, alice, original_id, 4)
    assert [b['state'] for b in sorted(original, key=lambda b: b['seq'])] == ['succeeded', 'failed', 'succeeded',
                                                                             'failed']
    url = agency.url + '/experiments/{}/resubmit'.format(original_id)

    changed_cli = command_red(['pass', FAIL, 'print(2)', FAIL])
    changed_cli['cli']['baseCommand'] = ['python3', '-B', '-c']
    changed_batch = command_red(['pass', FAIL, 'print(2)', 'raise SystemExit(4)'])
    fewer = command_red(['pass', FAIL])
    for other, words in ((changed_cli, 'cli differs'), (changed_batch, 'batches[3] of the RED differs'),
                         (fewer, 'the RED has 2 batches, the experiment 4')):
        refused = alice.post(url, json=other, timeout=30)
        assert refused.status_code == 400 and words in refused.json()['message'], refused.text
    assert alice.post(url, json=red, params={'states': 'succeeded'}, timeout=30).status_code == 400
    assert bob.post(url, json=red, timeout=30).status_code == 404  # not his

    response = alice.post(url, json=red, timeout=30)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer['batchCount'] == 2 and answer['resubmittedFrom'] == original_id
    again = batches_of(agency, alice, answer['experimentId'], 2)
    assert sorted(b['inputs']['script'] for b in again) == [FAIL, FAIL]
    experiments = {e: alice.get(agency.url + '/experiments/' + e, timeout=10).json()
                   for e in (original_id, answer['experimentId'])}
    assert experiments[original_id]['resubmittedAs'] == [answer['experimentId']]
    assert experiments[answer['experimentId']]['resubmittedFrom'] == original_id

    ok_id = submit(agency, alice, command_red(['pass']))
    batches_of(agency, alice, ok_id, 1)
    nothing = alice.post(agency.url + '/experiments/{}/resubmit'.format(ok_id), json=command_red(['pass']),
                         timeout=30)
    assert nothing.status_code == 409 and 'nothing to resubmit' in nothing.json()['message']


def test_resubmit_with_cancelled_widens_the_choice(make_agency, engine):
    agency = make_agency(nodes_of([engine]), attempts_to_fail=1)
    alice = user_session(agency)
    wait_nodes_online(agency, alice, [engine.name])
    red = command_red([FAIL, SLEEP.format(60)], execution_settings={'batchConcurrencyLimit': 1})
    original_id = submit(agency, alice, red)
    deadline = time.time() + 30
    while alice.get(agency.url + '/batches', params={'state': 'failed', 'experimentId': original_id},
                    timeout=10).json() == []:
        assert time.time() < deadline, 'the first batch did not fail'
        time.sleep(0.1)
    assert alice.delete(agency.url + '/experiments/' + original_id, timeout=30).json()['cancelled'] == 1
    url = agency.url + '/experiments/{}/resubmit'.format(original_id)
    assert alice.post(url, json=red, timeout=30).json()['batchCount'] == 1
    assert alice.post(url, json=red, params={'states': 'failed,cancelled'}, timeout=30).json()['batchCount'] == 2
    experiment = alice.get(agency.url + '/experiments/' + original_id, timeout=10).json()
    assert len(experiment['resubmittedAs']) == 2
