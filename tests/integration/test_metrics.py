"""The controller's Prometheus endpoint over real HTTP: what it reports after batches ran and while one runs, parsed
with prometheus_client's own parser; labels hold only state and node names."""
import time

import requests
from prometheus_client.parser import text_string_to_metric_families

from localcluster.processes import free_port
from tests.integration.cluster import batches_of, command_red, nodes_of, submit, user_session, wait_nodes_online

RAM_MIB = 256


def scrape(url):
    response = requests.get(url, timeout=10)
    assert response.status_code == 200 and response.headers['Content-Type'].startswith('text/plain')
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def wait_metric(url, key, value, timeout_s=30, also=lambda samples: True):
    """Scrape until `key` has `value` and `also(samples)` holds (a run is observed after its container is removed,
    which follows its batch's last transition); returns those samples."""
    deadline = time.time() + timeout_s
    while True:
        samples = scrape(url)
        if samples.get(key) == value and also(samples):
            return samples
        assert time.time() < deadline, '{} is {}, not {} (or not also): {}'.format(key, samples.get(key), value,
                                                                                   samples)
        time.sleep(0.3)


def test_metrics_report_batches_nodes_placements_and_durations(make_agency, engine):
    port = free_port()
    agency = make_agency(nodes_of([engine]),
                         extra={'controller.metrics': {'bind_host': '127.0.0.1', 'bind_port': port}})
    url = 'http://127.0.0.1:{}/metrics'.format(port)
    alice = user_session(agency, 'alice')
    wait_nodes_online(agency, alice, [engine.name])
    experiment_id = submit(agency, alice, command_red(['pass', 'print(2)'], ram=RAM_MIB))
    assert [b['state'] for b in batches_of(agency, alice, experiment_id, 2)] == ['succeeded'] * 2

    samples = wait_metric(url, ('ccagency_batches', (('state', 'succeeded'),)), 2,
                          also=lambda samples: samples[('ccagency_batch_run_seconds_count', ())] >= 2)
    assert samples[('ccagency_placements_total', ())] >= 2
    assert samples[('ccagency_batches', (('state', 'registered'),))] == 0
    assert samples[('ccagency_nodes', (('state', 'online'),))] == 1
    assert samples[('ccagency_nodes', (('state', 'offline'),))] == 0
    assert samples[('ccagency_node_ram_used_mib', (('node', engine.name),))] == 0
    assert samples[('ccagency_batch_run_seconds_count', ())] >= 2
    assert samples[('ccagency_batch_run_seconds_sum', ())] > 0
    assert samples[('ccagency_scheduling_pass_seconds_count', ())] >= 1
    assert samples[('ccagency_engine_errors_total', (('node', engine.name),))] == 0
    assert samples[('ccagency_notifications_pending', ())] == 0

    sleeper_id = submit(agency, alice, command_red(['import time; time.sleep(60)'], ram=RAM_MIB))
    samples = wait_metric(url, ('ccagency_node_ram_used_mib', (('node', engine.name),)), RAM_MIB)
    assert samples[('ccagency_batches', (('state', 'processing'),))] + \
        samples[('ccagency_batches', (('state', 'scheduled'),))] == 1
    [sleeper] = alice.get(agency.url + '/batches', params={'experimentId': sleeper_id}, timeout=10).json()
    assert alice.delete(agency.url + '/batches/' + sleeper['_id'], timeout=10).status_code == 200
    samples = wait_metric(url, ('ccagency_batches', (('state', 'cancelled'),)), 1)

    label_values = {value for _, labels in samples for _, value in labels}
    assert label_values <= {'registered', 'scheduled', 'processing', 'succeeded', 'failed', 'cancelled', 'online',
                            'offline', 'draining', 'cordoned', 'unknown', engine.name} | {
        value for (name, labels) in samples if name.endswith('_bucket') for key, value in labels if key == 'le'}
