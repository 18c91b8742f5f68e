"""`ccagency node list|cordon|uncordon NAME`: see the nodes and take one out of scheduling, from the operator's shell.

Why through the database and not the broker: an operator draining a node for maintenance must not need a broker
login or a running broker; the controller reads the cordon from the `nodes` collection (cc_agency/cordon.py) in its
next scheduling pass.
"""
from cc_agency.cli import CliError
from cc_agency.cordon import is_schedulable, set_schedulable
from cc_agency.db import BATCHES, NODES, database
from cc_agency.states import ACTIVE_STATES

DESCRIPTION = 'List the nodes, or cordon (no new batches) and uncordon one.'
OPERATOR = 'the operator (ccagency node)'


def add_arguments(parser):
    parser.add_argument('action', choices=['list', 'cordon', 'uncordon'])
    parser.add_argument('name', nargs='?', metavar='NAME', help='the node (for cordon and uncordon)')


def run(conf, args):
    db = database(conf)
    if args.action == 'list':
        return list_nodes(db)
    if not args.name:
        raise CliError('name the node to {}'.format(args.action))
    if set_schedulable(db, args.name, args.action == 'uncordon', OPERATOR) is None:
        known = sorted(doc['_id'] for doc in db[NODES].find({}, {'_id': 1}))
        raise CliError('no node "{}" (known: {})'.format(args.name, ', '.join(known) or 'none yet'))
    print('Node {} {}.'.format(args.name, 'uncordoned: new batches may go there' if args.action == 'uncordon'
                               else 'cordoned: no new batches go there; running ones finish'))
    return 0


def list_nodes(db):
    running = {}
    for batch in db[BATCHES].find({'state': {'$in': list(ACTIVE_STATES)}}, {'node': 1}):
        running[batch.get('node')] = running.get(batch.get('node'), 0) + 1
    print('{:<20} {:<8} {:<12} {:>10} {:>5} {:>8}'.format('NODE', 'STATE', 'SCHEDULING', 'RAM_MIB', 'GPUS', 'BATCHES'))
    for node in db[NODES].find({}, {'history': 0}).sort('_id', 1):
        print('{:<20} {:<8} {:<12} {:>10} {:>5} {:>8}'.format(
            node['_id'], node.get('state') or '-', 'enabled' if is_schedulable(node) else 'cordoned',
            node.get('ramMiB') if node.get('ramMiB') is not None else '-', len(node.get('gpus') or ()),
            running.get(node['_id'], 0)))
    return 0
