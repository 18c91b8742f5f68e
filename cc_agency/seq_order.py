"""Reading documents in registration order, by ranges of their sequence numbers.

Registration gives every experiment and batch a sequence number `seq` (cc_agency.db.allocate_seq). To read the
first N documents of a query in that order, `read_in_order` reads ranges of sequence numbers, starting at one end:
first a range as wide as what is wanted, then ranges 4 times wider each, until it has N. The first stage of each
read is the range together with at most one equality (`lead`) that has an index with seq; the rest of the query
applies to what that stage finds. So a read costs about what it returns when the query matches much of a range,
and at most about 4/3 of a plain scan when it matches little, on any MongoDB-wire server -- also on those that
read every document matching a query before they apply its limit. A `skip` costs one read of the ranges it
passes (counted, not returned).

Fields a page leaves out (`without`) are dropped here, not by a projection of the server: SecantusDB, the embedded
default, copies every document deeply to project it, which took a quarter of a 100-batch page's time, more than
sending the fields does.
"""
from cc_agency.db import SEQ


def seq_ranges(low, high, first_width, ascending=True, growth=4):
    """Ranges (first, last) of sequence numbers covering low..high, from low up (or from high down when not
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


def read_in_order(collection, lead, rest, low, high, limit, skip=0, ascending=True, without=()):
    """Up to `limit` documents with sequence numbers in low..high that match `lead` and `rest`, in the order of
    their sequence numbers, after skipping `skip` of them, each without the top-level fields `without`."""
    found = []
    for first, last in seq_ranges(low, high, skip + limit, ascending):
        stages = [{'$match': dict(lead, **{SEQ: {'$gte': first, '$lte': last}})}] + ([{'$match': rest}] if rest else [])
        page = [{'$sort': {SEQ: 1 if ascending else -1}}, {'$skip': skip}, {'$limit': limit - len(found)}]
        if not skip:
            found.extend(collection.aggregate(stages + page))
        else:  # one read of the range tells how many it holds and, when that is more than skip, the page
            [result] = collection.aggregate(stages + [{'$facet': {'n': [{'$count': 'n'}], 'page': page}}])
            in_range = result['n'][0]['n'] if result['n'] else 0
            if in_range <= skip:
                skip -= in_range
                continue
            found.extend(result['page'])
            skip = 0
        if len(found) == limit:
            break
    for doc in found:
        for field in without:
            doc.pop(field, None)
    return found
