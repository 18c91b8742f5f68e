"""Cordoning nodes: an operator takes a node out of scheduling (nothing new is placed there, what runs there
finishes) and puts it back.

Why a module of its own: the broker (`PATCH /nodes/<name>`), the operator's CLI (`ccagency node cordon`) and the
controller's scheduler meet on one field of the `nodes` collection, and each must read and write it the same way.
A node without the field is schedulable. The node monitor never writes it, so a cordon outlives engine outages and
controller restarts.
"""
from cc_agency.db import NODE_SCHEDULABLE as SCHEDULABLE, NODES, history_push, now


def set_schedulable(db, node_name, schedulable, by):
    """Cordon (False) or uncordon (True) a node the controller knows, with a history entry naming who did it.

    Returns the node's document after the change (history left out), or None when there is no such node.
    """
    what = 'uncordoned' if schedulable else 'cordoned'
    entry = {'state': None, SCHEDULABLE: schedulable, 'time': now(), 'debugInfo': ['{} by {}'.format(what, by)]}
    update = {'$set': {SCHEDULABLE: schedulable}, '$push': {'history': history_push(entry)}}
    return db[NODES].find_one_and_update({'_id': node_name}, update, projection={'history': 0},
                                         return_document=True)


def is_schedulable(node_document):
    return node_document.get(SCHEDULABLE, True)


def cordoned_nodes(db):
    """The names of the cordoned nodes (one indexed read; usually none or a few)."""
    return {doc['_id'] for doc in db[NODES].find({SCHEDULABLE: False}, {'_id': 1})}
