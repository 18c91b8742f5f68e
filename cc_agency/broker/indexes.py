"""Indexes the broker's own queries need, on top of the shared ones of `cc_agency.db.ensure_indexes`.

Lists sort by (registrationTime, _id); an index on exactly that order lets MongoDB return the first page of an
unfiltered list, or of one user's list, without sorting every batch (GET /batches?limit=100 stays fast with
100,000 batches). `registrationComplete` finds the few experiments whose registration is unfinished.
"""
from cc_agency.db import BATCHES, EXPERIMENTS, ensure_indexes

LIST_ORDER = [('registrationTime', -1), ('_id', -1)]


def ensure_broker_indexes(db):
    """Idempotent; run at broker start."""
    ensure_indexes(db)
    db[BATCHES].create_index(LIST_ORDER)
    db[BATCHES].create_index([('username', 1)] + LIST_ORDER)
    db[EXPERIMENTS].create_index([('registrationComplete', 1)])
