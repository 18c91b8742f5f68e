"""GET /nodes: the engines the controller knows, with their resources and current batches, under this API's
field names and cc-agency 9.3's (`nodeName`, `state`, `ram`, `cpus`, `gpus`, `currentBatches[].{batchId, ram}`)."""
from flask import Blueprint, jsonify

from cc_agency.broker.context import db, requires_auth, user_scope
from cc_agency.db import BATCHES, NODES
from cc_agency.states import ACTIVE_STATES

blueprint = Blueprint('nodes', __name__)


@blueprint.get('/nodes')
@requires_auth
def list_nodes():
    database = db()
    active = {}
    scope = user_scope()
    projection = {'node': 1, 'state': 1, 'username': 1, 'experimentId': 1, 'requirements': 1, 'usedGPUs': 1}
    for batch in database[BATCHES].find({'state': {'$in': list(ACTIVE_STATES)}}, projection):
        visible = not scope or batch.get('username') == scope['username']  # others' batches show only resources
        active.setdefault(batch.get('node'), []).append({
            'batchId': str(batch['_id']) if visible else None,
            'experimentId': batch['experimentId'] if visible else None,
            'state': batch['state'],
            'ramMiB': batch['requirements']['ramMiB'],
            'ram': batch['requirements']['ramMiB'],  # cc-agency 9.3's name (MiB), read by its web UI
            'usedGPUs': batch.get('usedGPUs'),
        })
    nodes = []
    for node in database[NODES].find({}, {'history': {'$slice': -10}}).sort('_id', 1):
        node['nodeName'] = node.pop('_id')
        if 'ramMiB' in node:
            node['ram'] = node['ramMiB']  # cc-agency 9.3's name (MiB); state, cpus and gpus have 9.3's names
        node['currentBatches'] = active.get(node['nodeName'], [])
        nodes.append(node)
    return jsonify(nodes)
