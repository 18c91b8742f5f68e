"""Re-reading the configuration on SIGHUP (`systemctl reload ccagency-controller`): which nodes change (pure).

Why: adding an engine to a busy cluster, or taking one away, should not need a controller restart (which the
running batches survive, but which stops scheduling for its duration). `node_changes` compares the node sections
of the old and the new file; the daemon (cc_agency/controller/daemon.py) applies the result: an added node gets
an engine adapter and a monitor, a changed one (its address, TLS, environment, network or GPUs) a new adapter and
monitor (running attempts finish on the old adapter), and a removed one is drained first: nothing new is placed
there, and only once its running batches have ended are its monitor stopped and its document removed. The other
keys of a reloaded file (the notification hooks and the metrics address among them) take effect only at the next
start; a file that does not pass the check is refused with one log line, and the old configuration stays.
"""
from collections import namedtuple

NodeChanges = namedtuple('NodeChanges', 'added removed changed')


def node_changes(old_nodes, new_nodes):
    """Names of the nodes added, removed and changed between two `controller.docker.nodes` sections, sorted."""
    added = sorted(set(new_nodes) - set(old_nodes))
    removed = sorted(set(old_nodes) - set(new_nodes))
    changed = sorted(name for name in set(old_nodes) & set(new_nodes) if old_nodes[name] != new_nodes[name])
    return NodeChanges(added, removed, changed)
