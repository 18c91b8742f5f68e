"""The metrics recorder (cc_agency/controller/metrics.py) without a server: names, private registries, node
states, and the engine adapter counting the calls that could not reach its engine."""
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from cc_agency.controller.engines import Engine, EngineError
from cc_agency.controller.metrics import Metrics, node_state


def samples(metrics):
    text = generate_latest(metrics.registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_each_controller_records_into_its_own_registry():
    first, second = Metrics(node_names=['node1']), Metrics(node_names=['node1'])
    first.placed()
    first.placed()
    first.scheduling_pass_took(0.02)
    first.run_ended(3.0)
    first.engine_error('node1')
    first.delivery_given_up()
    got = samples(first)
    assert got[('ccagency_placements_total', ())] == 2
    assert got[('ccagency_scheduling_pass_seconds_count', ())] == 1
    assert got[('ccagency_batch_run_seconds_bucket', (('le', '5.0'),))] == 1
    assert got[('ccagency_batch_run_seconds_bucket', (('le', '1.0'),))] == 0
    assert got[('ccagency_engine_errors_total', (('node', 'node1'),))] == 1
    assert got[('ccagency_notifications_given_up_total', ())] == 1
    other = samples(second)
    assert other[('ccagency_placements_total', ())] == 0
    assert other[('ccagency_engine_errors_total', (('node', 'node1'),))] == 0  # a node without errors shows 0


def test_an_engine_that_cannot_be_reached_counts_an_error_for_its_node(tmp_path):
    errors = []
    engine = Engine('node7', {'base_url': 'unix://{}/missing.sock'.format(tmp_path)}, 1, on_error=errors.append)
    with pytest.raises(EngineError):
        engine.info()
    assert errors == ['node7']


def test_nodes_are_counted_in_one_state_each():
    assert node_state({'state': 'online', 'draining': True}, cordoned=True) == 'draining'
    assert node_state({'state': 'online', 'draining': False}, cordoned=True) == 'cordoned'
    assert node_state({'state': 'online', 'draining': False}, cordoned=False) == 'online'
    assert node_state({'state': 'offline', 'draining': False}, cordoned=True) == 'offline'
    assert node_state({'state': None, 'draining': False}, cordoned=False) == 'unknown'
