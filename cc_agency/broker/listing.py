"""Query parameters shared by list and count endpoints: filters, skip, limit, order.

Lists are sorted by registration time with `_id` as the tie-breaker (all batches of one experiment share their
registration time), so `skip`/`limit` pages never overlap or miss a document. The indexes in
`cc_agency.db.ensure_indexes` cover this order for the unfiltered (admin) list and for a user's own list.
"""
from flask import request

from cc_agency.broker.context import bool_arg, db, int_arg, object_id, shown, user_scope
from cc_agency.broker.errors import bad_request
from cc_agency.db import EXPERIMENTS, LIST_ORDER
from cc_agency.states import ALL_STATES

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
NOTHING = {'$in': []}  # a filter value no document matches


def list_filter(allowed):
    """The MongoDB filter from the query's `allowed` filters, limited to what the user may see."""
    query = user_scope()
    if 'username' in allowed and request.args.get('username'):
        if 'username' in query and query['username'] != request.args['username']:
            query['username'] = NOTHING  # a non-admin asking for someone else's work sees nothing
        else:
            query['username'] = request.args['username']
    if 'state' in allowed and request.args.get('state') is not None:
        state = request.args['state']
        if state not in ALL_STATES:
            raise bad_request('query parameter state: "{}" is not one of {}'.format(shown(state), ', '.join(ALL_STATES)))
        query['state'] = state
    if 'node' in allowed and request.args.get('node'):
        query['node'] = request.args['node']
    if 'experimentId' in allowed and request.args.get('experimentId') is not None:
        query['experimentId'] = str(object_id(request.args['experimentId'], 'experimentId'))
    return query


def hide_incomplete_registrations(query):
    """Leave out batches of experiments whose registration is under way or broke off (the database went away
    in the middle of POST /red): a request answered with an error must not show any of its batches. Such
    experiments are few and short-lived (the controller removes broken ones), so this costs one small query."""
    incomplete = [str(doc['_id']) for doc in db()[EXPERIMENTS].find({'registrationComplete': False}, {'_id': 1})]
    if not incomplete:
        return query
    if 'experimentId' in query:
        if query['experimentId'] in incomplete:
            query['experimentId'] = NOTHING
    else:
        query['experimentId'] = {'$nin': incomplete}
    return query


def list_order(ascending):
    """Newest first (LIST_ORDER, the order of the list indexes), or that order reversed."""
    return [(key, -direction) for key, direction in LIST_ORDER] if ascending else list(LIST_ORDER)


def find_page(collection, query, projection=None):
    skip = int_arg('skip', 0, minimum=0)
    limit = int_arg('limit', DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
    return collection.find(query, projection).sort(list_order(bool_arg('ascending'))).skip(skip).limit(limit)
