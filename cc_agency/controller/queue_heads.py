"""Where each experiment's queue starts: a lower bound, kept in memory, of the `seq` of its queued batches.

Why: the embedded database (SecantusDB) sorts every document a query matches, even when an index holds them in
order, so "the oldest queued batches of this experiment" costs a read of all of them: 10,000 documents for a large
sweep, in every pass. The scheduler reads an experiment's queue instead in windows of `seq` (its batches have the
consecutive numbers batchSeq .. batchSeq + batchCount - 1), each an index range, starting at the head kept here and
moving it past what the pass saw leave the queue. Batches only re-enter the queue (a retry) in this process, through
BatchLifecycle's on_requeued: `forget` drops the experiment's head then, and a pass that read the experiment before
that moment may not store the head it computed (the version check), so a requeued batch is never skipped. A new
controller process starts from batchSeq.
"""
import threading


class QueueHeads:
    """{experiment id: lowest seq that may still be queued}, safe between the scheduler and the attempt threads."""

    def __init__(self):
        self._lock = threading.Lock()
        self._heads = {}
        self._versions = {}

    def get(self, experiment_id, default):
        """(head, version) of the experiment: the head, or `default` when none is known, and the version to hand
        back to `advance`."""
        with self._lock:
            return self._heads.get(experiment_id, default), self._versions.get(experiment_id, 0)

    def advance(self, experiment_id, version, head):
        """Store `head` if nothing was requeued in the experiment since `get` returned `version`."""
        with self._lock:
            if self._versions.get(experiment_id, 0) == version:
                self._heads[experiment_id] = head

    def forget(self, experiment_id):
        """A batch of the experiment is queued again: its head is unknown (it starts at batchSeq again)."""
        with self._lock:
            self._heads.pop(experiment_id, None)
            self._versions[experiment_id] = self._versions.get(experiment_id, 0) + 1

    def keep_only(self, experiment_ids):
        """Forget the experiments not in `experiment_ids` (those with queued batches), so that the dicts stay small.
        Called by the scheduler between passes: no pass holds a version of those."""
        with self._lock:
            self._heads = {i: head for i, head in self._heads.items() if i in experiment_ids}
            self._versions = {i: version for i, version in self._versions.items() if i in experiment_ids}
