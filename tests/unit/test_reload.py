"""Reloading the configuration: which nodes changed (pure), and a draining node on the board the scheduler reads."""
from cc_agency.controller.reload import node_changes
from cc_agency.controller.scheduler import node_capacities
from cc_agency.controller.state import NodeBoard


def test_node_changes_by_name_and_settings():
    old = {'a': {'base_url': 'unix:///a'}, 'b': {'base_url': 'unix:///b'}, 'c': {'base_url': 'unix:///c'}}
    new = {'a': {'base_url': 'unix:///a'}, 'c': {'base_url': 'unix:///c', 'network': 'host'},
           'd': {'base_url': 'unix:///d'}}
    assert node_changes(old, new) == (['d'], ['b'], ['c'])
    assert node_changes(old, old) == ([], [], [])


def test_a_draining_node_takes_nothing_new_whatever_its_monitor_says():
    board = NodeBoard(['a', 'b'])
    online = {'state': 'online', 'ramMiB': 4096, 'gpus': []}
    board.set('a', online)
    board.set('b', online)
    board.drain('b')
    board.set('b', online)  # its monitor probes on: still draining
    capacities = node_capacities(board.snapshot(), [])
    assert capacities['a'].online and not capacities['b'].online
    board.add('b')  # added back to the configuration before it was drained
    board.set('b', online)
    assert node_capacities(board.snapshot(), [])['b'].online


def test_a_removed_node_is_gone_even_if_its_monitor_reports_late():
    board = NodeBoard(['a'])
    board.remove('a')
    board.set('a', {'state': 'online', 'ramMiB': 1024})
    assert board.snapshot() == {}
