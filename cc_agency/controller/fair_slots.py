"""A node's container starts, a few at a time, given to the user with the fewest batches there first.

Why: an engine takes only a few container starts at once (create, copy the agent in, start: more only queue up
inside dockerd and make its calls time out), so the controller lets STARTS_AT_ONCE through per node and the others
wait. While a sweep runs ten batches on a node and starts one every few tenths of a second, a plain semaphore hands
a freed slot to whichever thread wins it, and a colleague's single batch queues behind the sweep's starts (up to
0.4 s of a 1.9 s batch in bench_peer's big queue). As the scheduler and the containers' CPU weights already do
(cc_agency/controller/fairshare.py), a freed slot goes to the waiter whose user has the fewest batches on the node,
oldest first among equals; a user's starts only wait for users with fewer batches there, and nobody waits for a
slot that is free.
"""
import heapq
import itertools
import threading
from contextlib import contextmanager


class FairSlots:
    """At most `size` holders at once; a freed slot goes to the waiter with the lowest priority, then the oldest."""

    def __init__(self, size):
        self.size = size
        self._held = 0
        self._waiting = []  # heap of (priority, arrival)
        self._arrivals = itertools.count()
        self._changed = threading.Condition()

    @contextmanager
    def slot(self, priority):
        """Hold a slot for the block; `priority`: how many batches its user has on the node (lower goes first)."""
        with self._changed:
            ticket = (priority, next(self._arrivals))
            heapq.heappush(self._waiting, ticket)
            try:
                while self._held >= self.size or self._waiting[0] != ticket:
                    self._changed.wait()
            except BaseException:  # interrupted while waiting: the others must not wait behind its ticket
                self._waiting.remove(ticket)
                heapq.heapify(self._waiting)
                self._changed.notify_all()
                raise
            heapq.heappop(self._waiting)
            self._held += 1
            self._changed.notify_all()  # the next waiter may take a slot that is still free
        try:
            yield
        finally:
            with self._changed:
                self._held -= 1
                self._changed.notify_all()

    def waiting(self):
        """How many threads wait for a slot."""
        with self._changed:
            return len(self._waiting)
