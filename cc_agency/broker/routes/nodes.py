"""GET /nodes: the engines the controller knows, with their resources and current batches, under this API's
field names and cc-agency 9.3's (`nodeName`, `state`, `ram`, `cpus`, `gpus`, `currentBatches[].{batchId, ram}`);
PATCH /nodes/<name> (admins): cordon or uncordon a node."""
from flask import Blueprint, g, jsonify, request

from cc_agency.broker.context import db, requires_auth, shown, user_scope
from cc_agency.broker.errors import ApiError, bad_request, not_found
from cc_agency.cordon import SCHEDULABLE, is_schedulable, set_schedulable
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
        node[SCHEDULABLE] = is_schedulable(node)
        nodes.append(node)
    return jsonify(nodes)


@blueprint.patch('/nodes/<node_name>')
@requires_auth
def update_node(node_name):
    """`{"schedulable": false}` cordons the node (nothing new is placed there; running batches finish), `true`
    undoes it. Admins only: a cordon affects every user."""
    if not g.user.get('isAdmin'):
        raise ApiError(403, 'only admins may change nodes')
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict) or set(body) != {SCHEDULABLE} or not isinstance(body[SCHEDULABLE], bool):
        raise bad_request('the body must be {"schedulable": true} or {"schedulable": false}')
    node = set_schedulable(db(), node_name, body[SCHEDULABLE], 'admin ' + g.user['username'])
    if node is None:
        raise not_found('node "{}"'.format(shown(node_name)))
    node['nodeName'] = node.pop('_id')
    return jsonify(node)
