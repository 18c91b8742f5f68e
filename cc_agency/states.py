"""Batch and node states, and the batch transitions allowed between them (pure; the writes are the named
operations of cc_agency/transitions.py)."""

REGISTERED = 'registered'
SCHEDULED = 'scheduled'
PROCESSING = 'processing'
SUCCEEDED = 'succeeded'
FAILED = 'failed'
CANCELLED = 'cancelled'

ALL_STATES = (REGISTERED, SCHEDULED, PROCESSING, SUCCEEDED, FAILED, CANCELLED)
TERMINAL_STATES = frozenset([SUCCEEDED, FAILED, CANCELLED])
ACTIVE_STATES = (SCHEDULED, PROCESSING)  # states that hold resources on a node

ALLOWED_TRANSITIONS = {
    REGISTERED: frozenset([SCHEDULED, FAILED, CANCELLED]),
    SCHEDULED: frozenset([PROCESSING, REGISTERED, FAILED, CANCELLED]),
    PROCESSING: frozenset([SUCCEEDED, FAILED, REGISTERED, CANCELLED]),
    SUCCEEDED: frozenset(),
    FAILED: frozenset(),
    CANCELLED: frozenset(),
}


def is_allowed(from_state, to_state):
    return to_state in ALLOWED_TRANSITIONS.get(from_state, ())


def state_after_failure(attempts, attempts_to_fail, retry_allowed, permanent):
    """Where a batch goes after a failed attempt: back to the queue, or failed for good."""
    if permanent or not retry_allowed or attempts >= attempts_to_fail:
        return FAILED
    return REGISTERED


# node states, as the controller writes them to the `nodes` collection and the API shows them
NODE_ONLINE = 'online'
NODE_OFFLINE = 'offline'
