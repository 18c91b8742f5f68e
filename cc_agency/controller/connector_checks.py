"""Watch the first batch of an experiment for the agent's "connector checks passed" line (see jobs.py).

While an experiment has no connector check recorded, the scheduler runs one of its batches at a time. For that
batch a `CheckWatch` thread finds the attempt's container on its node, follows its stderr, and as soon as the agent
says its checks passed, records them on the experiment and wakes the scheduler: the other batches then start
without checks of their own while the first one is still receiving its inputs. If the line never comes (the checks
failed, the container died), nothing is recorded and the next batch of the experiment checks again. An experiment
of one batch is not watched: no other batch waits for its checks.
"""
import logging
import threading
import time

from bson import ObjectId

from cc_agency.controller import jobs
from cc_agency.db import BATCHES, EXPERIMENTS
from cc_agency.states import ACTIVE_STATES

log = logging.getLogger(__name__)

FIND_CONTAINER_INTERVAL_S = 0.1
WATCH_LIMIT_S = 3600  # an image pull plus the checks; after that the batch's own end lifts the limit


class CheckWatcher:
    """Starts a CheckWatch for the first batch of an experiment whose connector checks are pending."""

    def __init__(self, db, engines, stopping, wake):
        self.db = db
        self.engines = engines
        self.stopping = stopping
        self.wake = wake

    def watch(self, batch_id, attempt, node):
        CheckWatch(self.db, self.engines[node], batch_id, attempt, self.stopping, self.wake).start()


class CheckWatch(threading.Thread):
    def __init__(self, db, engine, batch_id, attempt, stopping, wake):
        super().__init__(name='checks-{}'.format(batch_id), daemon=True)
        self.db = db
        self.engine = engine
        self.batch_id = batch_id
        self.attempt = attempt
        self.stopping = stopping
        self.wake = wake

    def run(self):
        try:
            if self._checks_passed():
                self._record()
        except Exception as e:  # the batch's own end lifts the limit anyway
            log.info('batch %s: not watching its connector checks (%s: %s)', self.batch_id, type(e).__name__, e)

    def _checks_passed(self):
        deadline = time.monotonic() + WATCH_LIMIT_S
        seen, next_state_check = False, 0
        while not self.stopping.is_set() and time.monotonic() < deadline:
            container = self.engine.find_batch_container(self.batch_id, self.attempt)
            if container is None:
                if seen:
                    return False  # removed
                if time.monotonic() > next_state_check:
                    if not self._attempt_active():
                        return False  # the attempt ended before it had a container (e.g. the pull failed)
                    next_state_check = time.monotonic() + 1
                self.stopping.wait(FIND_CONTAINER_INTERVAL_S)
                continue
            seen = True
            if container['state'] == 'created':
                self.stopping.wait(FIND_CONTAINER_INTERVAL_S)
                continue
            found = self.engine.stderr_contains(container['id'], jobs.CHECKS_PASSED_LINE)
            if found is not None:
                return found
            # the log stream timed out while the agent was busy: follow it again
        return False

    def _attempt_active(self):
        return self.db[BATCHES].count_documents(
            {'_id': self.batch_id, 'attempts': self.attempt, 'state': {'$in': list(ACTIVE_STATES)}}, limit=1) > 0

    def _record(self):
        batch = self.db[BATCHES].find_one({'_id': self.batch_id}, {'inputs': 1, 'outputs': 1,
                                                                              'experimentId': 1})
        experiment_id = ObjectId(batch['experimentId'])
        experiment = self.db[EXPERIMENTS].find_one({'_id': experiment_id}, {'container.settings.image': 1})
        image_url = experiment['container']['settings']['image']['url']
        # the image itself is an entry too: a batch without connectors also ends the one-at-a-time start
        entries = [image_url] + jobs.connector_check_entries(batch, image_url)
        self.db[EXPERIMENTS].update_one(
            {'_id': experiment_id}, {'$addToSet': {'connectorChecksPassed': {'$each': entries}}})
        log.info('batch %s: connector checks passed, later batches of experiment %s skip them', self.batch_id,
                 experiment_id)
        self.wake()
