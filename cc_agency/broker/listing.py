"""Query parameters shared by list and count endpoints (filters, skip, limit, order), and how a page is read.

Lists are in registration order, newest first (or oldest first with `ascending`): the order of the sequence
numbers `seq` that registration gives every experiment and batch (cc_agency.db.allocate_seq). A page is read in
ranges of sequence numbers, from the newest one down: first a range as wide as the page, then ranges 4 times
wider each, until the page is full. The first stage of each read, the range with at most one equality (username
or state), is served by the indexes (seq), (username, seq) and (state, seq); other filters apply to what it
finds. So a page costs about what it returns when the filter matches much of the range, and at most about 4/3 of
a plain scan when it matches little; `skip` counts whole ranges instead of reading them. This also keeps pages
cheap on servers that read every document matching a query before they apply its limit.
"""
from flask import request

from cc_agency.broker.context import bool_arg, db, int_arg, object_id, shown, user_scope
from cc_agency.broker.errors import bad_request
from cc_agency.db import EXPERIMENTS, SEQ, last_seq
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


def split_query(query):
    """(lead, rest): the one equality the first stage of a page read matches with its range of sequence numbers
    (username, or else state: each has an index with seq), and the filters applied after it (pure)."""
    rest = dict(query)
    for field in ('username', 'state'):
        if isinstance(rest.get(field), str):
            return {field: rest.pop(field)}, rest
    return {}, rest


def seq_ranges(low, high, first_width, ascending=False, growth=4):
    """Ranges (first, last) of sequence numbers covering low..high, from high down (or from low up when
    `ascending`); the first is `first_width` wide, each next one `growth` times wider (pure)."""
    width = max(1, first_width)
    while low <= high:
        if ascending:
            yield low, min(high, low + width - 1)
            low += width
        else:
            yield max(low, high - width + 1), high
            high -= width
        width *= growth


def find_page(collection, query, projection=None, seq_range=None):
    """The page the request's skip, limit and ascending ask for, of the documents matching `query`.

    `seq_range`: (first, last) sequence numbers the documents can have (e.g. the batches of one experiment).
    """
    skip = int_arg('skip', 0, minimum=0)
    limit = int_arg('limit', DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
    ascending = bool_arg('ascending')
    if any(value == NOTHING for value in query.values()):
        return []
    low, high = 1, last_seq(collection.database, collection.name)
    if seq_range is not None:
        low, high = max(low, seq_range[0]), min(high, seq_range[1])
    lead, rest = split_query(query)
    page = []
    for first, last in seq_ranges(low, high, skip + limit, ascending):
        stages = [{'$match': dict(lead, **{SEQ: {'$gte': first, '$lte': last}})}] + ([{'$match': rest}] if rest else [])
        if skip:
            in_range = next(collection.aggregate(stages + [{'$count': 'n'}]), {'n': 0})['n']
            if in_range <= skip:
                skip -= in_range
                continue
        stages.append({'$sort': {SEQ: 1 if ascending else -1}})
        if skip:
            stages.append({'$skip': skip})
            skip = 0
        stages.append({'$limit': limit - len(page)})
        if projection:
            stages.append({'$project': projection})
        page.extend(collection.aggregate(stages))
        if len(page) == limit:
            break
    return page
