"""Wall-clock limits on a real agency: a run over its limit is stopped within seconds, its container removed, its
batch failed for good with the reason; the operator's default and cap apply; a run within its limit succeeds."""
import time

from tests.integration.cluster import (LABEL, batches_of, command_red, history_time, nodes_of, submit, user_session,
                                       wait_nodes_online)

SLEEP = 'import time; time.sleep({})'


def test_a_run_over_its_limit_is_stopped_and_fails_without_retry(make_agency, engine, engine_client):
    agency = make_agency(nodes_of([engine]), attempts_to_fail=3)
    alice = user_session(agency)
    wait_nodes_online(agency, alice, [engine.name])
    submitted = time.time()
    experiment_id = submit(agency, alice, command_red([SLEEP.format(60)], execution_settings={'timeLimitSeconds': 3}))
    [batch] = batches_of(agency, alice, experiment_id, 1, timeout=60)
    ended = time.time()
    assert batch['state'] == 'failed' and batch['attempts'] == 1  # not retried, though attempts were left
    assert 'time limit of 3 s exceeded' in batch['history'][-1]['debugInfo'][0]
    ran_s = batch['history'][-1]['time'] - history_time(batch, 'processing')
    assert 3 <= ran_s < 6, ran_s  # counted from processing, acted on within seconds
    assert ended - submitted < 20
    # removing a running container ends its wait before the engine has deleted it: allow it a few seconds, and
    # use the low-level list, as containers.list() inspects each one and fails for one removed meanwhile
    deadline = time.monotonic() + 10
    while engine_client.api.containers(all=True, filters={'label': '{}={}'.format(LABEL, batch['_id'])}):
        assert time.monotonic() < deadline, 'the container of the timed-out batch was not removed'
        time.sleep(0.1)


def test_the_operators_default_and_cap_and_a_run_within_its_limit(make_agency, engine):
    agency = make_agency(nodes_of([engine]), extra={'controller.scheduling.default_time_limit_seconds': 2,
                                                    'controller.scheduling.max_time_limit_seconds': 4})
    alice = user_session(agency)
    wait_nodes_online(agency, alice, [engine.name])
    by_default = submit(agency, alice, command_red([SLEEP.format(60)]))
    capped = submit(agency, alice, command_red([SLEEP.format(60)], execution_settings={'timeLimitSeconds': 3600}))
    within = submit(agency, alice, command_red([SLEEP.format(0.5)], execution_settings={'timeLimitSeconds': 4}))
    [default_batch] = batches_of(agency, alice, by_default, 1, timeout=60)
    [capped_batch] = batches_of(agency, alice, capped, 1, timeout=60)
    [within_batch] = batches_of(agency, alice, within, 1, timeout=60)
    assert default_batch['state'] == 'failed'
    assert 'time limit of 2 s exceeded' in default_batch['history'][-1]['debugInfo'][0]
    assert capped_batch['state'] == 'failed'
    assert 'time limit of 4 s exceeded' in capped_batch['history'][-1]['debugInfo'][0]
    assert within_batch['state'] == 'succeeded'


def test_a_controller_restart_does_not_give_a_run_a_fresh_limit(make_agency, engine):
    agency = make_agency(nodes_of([engine]))
    alice = user_session(agency)
    wait_nodes_online(agency, alice, [engine.name])
    experiment_id = submit(agency, alice, command_red([SLEEP.format(60)], execution_settings={'timeLimitSeconds': 6}))
    deadline = time.time() + 30
    while alice.get(agency.url + '/batches', params={'state': 'processing'}, timeout=10).json() == []:
        assert time.time() < deadline, 'the batch did not start'
        time.sleep(0.1)
    agency.stop_controller()
    time.sleep(2)
    agency.start_controller()  # adopts the running container
    [batch] = batches_of(agency, alice, experiment_id, 1, timeout=60)
    assert batch['state'] == 'failed' and 'time limit of 6 s exceeded' in batch['history'][-1]['debugInfo'][0]
    ran_s = batch['history'][-1]['time'] - history_time(batch, 'processing')
    assert 6 <= ran_s < 9, ran_s
