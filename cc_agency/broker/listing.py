"""Query parameters shared by list and count endpoints (filters, skip, limit, order), and reading a page.

Lists are in registration order, newest first (or oldest first with `ascending`): the order of the sequence
numbers `seq` that registration gives every experiment and batch. A page is read by ranges of sequence numbers
(cc_agency.seq_order), led by the username or else the state filter (indexes (seq), (username, seq),
(state, seq)), so that it costs about what it returns.
"""
from flask import request

from cc_agency.broker.context import bool_arg, int_arg, object_id, shown, user_scope
from cc_agency.broker.errors import bad_request
from cc_agency.db import last_seq
from cc_agency.seq_order import read_in_order
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


def split_query(query):
    """(lead, rest): the one equality the first stage of a page read matches with its range of sequence numbers
    (username, or else state: each has an index with seq), and the filters applied after it (pure)."""
    rest = dict(query)
    for field in ('username', 'state'):
        if isinstance(rest.get(field), str):
            return {field: rest.pop(field)}, rest
    return {}, rest


def find_page(collection, query, without=(), seq_range=None, extra=None):
    """The page the request's skip, limit and ascending ask for, of the documents matching `query`, each without
    the top-level fields `without`.

    `seq_range`: (first, last) sequence numbers the documents can have (e.g. the batches of one experiment).
    `extra(query, ascending)`: the `extra` of read_in_order for this query (documents kept outside the collection).
    """
    skip = int_arg('skip', 0, minimum=0)
    limit = int_arg('limit', DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
    ascending = bool_arg('ascending')
    if any(value == NOTHING for value in query.values()):
        return []
    # a range given out at registration never goes beyond the last sequence number
    low, high = seq_range or (1, last_seq(collection.database, collection.name))
    lead, rest = split_query(query)
    return read_in_order(collection, lead, rest, low, high, limit, skip, ascending, without,
                         extra and extra(query, ascending))
