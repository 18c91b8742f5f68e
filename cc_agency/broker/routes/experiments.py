"""GET /experiments, /experiments/count, /experiments/<id>; each experiment with its `batchCounts` by state."""
from flask import Blueprint, jsonify

from cc_agency.batch_counts import batch_counts
from cc_agency.broker.context import db, find_visible, object_id, requires_auth
from cc_agency.broker.documents import experiment_json
from cc_agency.broker.errors import not_found
from cc_agency.broker.listing import find_page, list_filter
from cc_agency.db import EXPERIMENTS

blueprint = Blueprint('experiments', __name__)
FILTERS = ('username',)


@blueprint.get('/experiments')
@requires_auth
def list_experiments():
    page = find_page(db()[EXPERIMENTS], list_filter(FILTERS), ('cli', 'pendingChunks'))
    counts = batch_counts(db(), page)
    return jsonify([experiment_json(doc, counts[str(doc['_id'])]) for doc in page])


@blueprint.get('/experiments/count')
@requires_auth
def count_experiments():
    return jsonify({'count': db()[EXPERIMENTS].count_documents(list_filter(FILTERS))})


@blueprint.get('/experiments/<experiment_id>')
@requires_auth
def get_experiment(experiment_id):
    doc = find_visible(db()[EXPERIMENTS], object_id(experiment_id, 'experiment id'), {'pendingChunks': 0})
    if doc is None:
        raise not_found('experiment')
    return jsonify(experiment_json(doc, batch_counts(db(), [doc])[str(doc['_id'])]))
