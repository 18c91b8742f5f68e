"""Reading documents in registration order, by ranges of their sequence numbers.

Registration gives every experiment and batch a sequence number `seq` (cc_agency.db.allocate_seq). To read the
first N documents of a query in that order, `read_in_order` reads ranges of sequence numbers, starting at one end:
first a range as wide as what is wanted, then each next one as wide as the documents still missing need at the
density of matches the last range had, with a quarter more as margin, and at most 4 times wider than the last. The
first stage of each read is the range together with at most one equality (`lead`) that has an index with seq; the
rest of the query applies to what that stage finds. So a read costs about what it returns when the query matches
much of a range (a page of registered batches whose newest few have already run: one range of 100, then one of
a few), and at most about 4/3 of a plain scan when it matches little, on any MongoDB-wire server -- also on those
that read every document matching a query before they apply its limit. A `skip` costs one read of the ranges it
passes (counted, not returned).

Fields a page leaves out (`without`) are dropped here, not by a projection of the server: SecantusDB, the embedded
default, copies every document deeply to project it, which took a quarter of a 100-batch page's time, more than
sending the fields does.
"""
import math

from cc_agency.db import SEQ

GROWTH = 4
MARGIN = 1.25


def next_width(width, wanted, matched, growth=GROWTH, margin=MARGIN):
    """The width of the next range, after one of `width` sequence numbers held `matched` of the `wanted` documents
    still to pass or take (matched < wanted): what the missing ones need at the density just seen, with `margin`,
    at least as many numbers as documents are missing, at most `growth` times `width` (pure)."""
    missing = wanted - matched
    if matched == 0:
        return width * growth
    return max(missing, min(width * growth, math.ceil(margin * missing * width / matched)))


def read_ranges(read_range, low, high, limit, skip=0, ascending=True):
    """Up to `limit` documents with sequence numbers in low..high in their order, after `skip` of them, read range
    by range from one end (pure: the reading is `read_range`).

    `read_range(first, last, skip, take)` -> (how many documents the range holds, those after the first `skip` of
    them, at most `take`); it is told `skip` only when there is one to pass.
    """
    found = []
    width = skip + limit
    while low <= high and len(found) < limit:
        first, last = (low, min(high, low + width - 1)) if ascending else (max(low, high - width + 1), high)
        wanted = skip + limit - len(found)
        in_range, page = read_range(first, last, skip, limit - len(found))
        found.extend(page)
        if skip:
            skip = max(0, skip - in_range)
        low, high = (last + 1, high) if ascending else (low, first - 1)
        width = next_width(last - first + 1, wanted, min(in_range, wanted))
    return found


def read_in_order(collection, lead, rest, low, high, limit, skip=0, ascending=True, without=(), extra=None):
    """Up to `limit` documents with sequence numbers in low..high that match `lead` and `rest`, in the order of
    their sequence numbers, after skipping `skip` of them, each without the top-level fields `without`.

    `extra`: documents kept outside the collection too (staged batches, cc_agency.staged_batches):
    `extra(first, last, skip, take, read_collection)` reads a range, the collection's part with
    `read_collection(first, last, skip, take)`, with the contract of `read_ranges`' `read_range`."""
    def read_collection(first, last, skip, take):
        stages = [{'$match': dict(lead, **{SEQ: {'$gte': first, '$lte': last}})}] + ([{'$match': rest}] if rest else [])
        page = [{'$sort': {SEQ: 1 if ascending else -1}}, {'$skip': skip}, {'$limit': take}]
        if not skip:
            docs = list(collection.aggregate(stages + page))
            return len(docs), docs  # fewer than take: all the range holds
        # one read of the range tells how many it holds and, when that is more than skip, the page
        [result] = collection.aggregate(stages + [{'$facet': {'n': [{'$count': 'n'}], 'page': page}}])
        return (result['n'][0]['n'] if result['n'] else 0), result['page']

    def read_range(first, last, skip, take):
        if extra is None:
            return read_collection(first, last, skip, take)
        return extra(first, last, skip, take, read_collection)

    found = read_ranges(read_range, low, high, limit, skip, ascending)
    for doc in found:
        for field in without:
            doc.pop(field, None)
    return found
