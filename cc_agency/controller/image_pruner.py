"""Removes from the nodes the images no batch used for `controller.docker.image_prune_duration` seconds.

Why: every experiment brings its own image, and a node's disk fills with images of experiments long over. When a
batch's image is on its node, the runner records the use (`ImageUses.record`: node, image, time) in the collection
`node_images`, so the last uses survive a controller restart. The pruner, a worker of its own on a timer
(`image_prune_interval_seconds`), removes from each online node the images whose last use is older than the
duration, never:
- one that a scheduled or processing batch on that node uses (its last use is then moved to now, so that an image
  that a batch used for days is kept for the duration after that batch, within one interval),
- one that a container of the node uses, whatever its state or owner,
- one that came from no registry (loaded, built or imported by the operator): it could not be pulled again,
- the agency's own image (`core_image.url`), nor an image no batch of this agency used (it is not recorded).
The last check and the removal happen under the engine's lock of that image (`Engine.remove_unused_image`), so a
batch that is placed meanwhile either is seen and keeps the image, or waits and pulls the image again.
Pruning is off while the duration is 0 (the default); the records are kept only while it is on.
"""
import logging

import pymongo.errors
from bson import ObjectId
from bson.errors import InvalidId

from cc_agency import loggable
from cc_agency.controller.engines import IMAGE_GONE, IMAGE_IN_USE, IMAGE_LOCAL, IMAGE_REMOVED, EngineError, ImageError
from cc_agency.db import BATCHES, EXPERIMENTS, NODE_IMAGES, now
from cc_agency.states import PROCESSING, SCHEDULED

log = logging.getLogger(__name__)


class ImageUses:
    """The last use of each image on each node, in MongoDB (`node_images`: {node, image, lastUsed})."""

    def __init__(self, db):
        self.db = db

    def record(self, node, image_url):
        """A batch uses `image_url` on `node` now. A failed write is logged, not raised: it only delays pruning."""
        try:
            self.db[NODE_IMAGES].update_one({'node': node, 'image': image_url}, {'$set': {'lastUsed': now()}},
                                            upsert=True)
        except pymongo.errors.PyMongoError as e:
            log.warning('node %s: the use of image %s was not recorded (%s)', node, image_url, loggable.describe(e))


def images_in_use(db, node):
    """The image URLs of the batches scheduled or processing on `node`."""
    experiment_ids = set()
    for batch in db[BATCHES].find({'node': node, 'state': {'$in': [SCHEDULED, PROCESSING]}}, {'experimentId': 1}):
        try:
            experiment_ids.add(ObjectId(batch['experimentId']))
        except (KeyError, InvalidId, TypeError):
            continue
    if not experiment_ids:
        return set()
    urls = set()
    for experiment in db[EXPERIMENTS].find({'_id': {'$in': sorted(experiment_ids)}},
                                           {'container.settings.image.url': 1}):
        url = ((experiment.get('container') or {}).get('settings') or {}).get('image', {}).get('url')
        if isinstance(url, str):
            urls.add(url)
    return urls


class ImagePruner:
    """A thread body: every `interval_s`, prune the online nodes' images unused for `duration_s`."""

    def __init__(self, db, engines, nodes, stopping, duration_s, interval_s, keep=()):
        """`engines`: the controller's {name: Engine} (nodes come and go with a reload); `nodes`: its NodeBoard;
        `keep`: image URLs never removed (the agency's own)."""
        self.db = db
        self.engines = engines
        self.nodes = nodes
        self.stopping = stopping
        self.duration_s = duration_s
        self.interval_s = interval_s
        self.keep = frozenset(keep)

    def run(self):
        log.info('image pruner: images no batch used for %s s are removed from the nodes (every %s s)',
                 self.duration_s, self.interval_s)
        while not self.stopping.wait(self.interval_s):
            for name, engine in list(self.engines.items()):
                if self.stopping.is_set():
                    return
                if not self.nodes.is_online(name):
                    continue
                try:
                    self.prune_node(name, engine)
                except (EngineError, ImageError, pymongo.errors.PyMongoError) as e:
                    log.warning('image pruner: node %s skipped this round (%s)', name, loggable.describe(e))
                except Exception as e:  # a bug or a bad document: this round of this node only
                    log.error('image pruner: node %s failed this round\n%s', name, loggable.traceback_text(e))

    def prune_node(self, name, engine):
        """One round on one node; returns {image url: IMAGE_*} of the images it looked at."""
        in_use = images_in_use(self.db, name)
        if in_use:
            self.db[NODE_IMAGES].update_many({'node': name, 'image': {'$in': sorted(in_use)}},
                                             {'$set': {'lastUsed': now()}})
        outcomes = {}
        unused_since = now() - self.duration_s
        for record in list(self.db[NODE_IMAGES].find({'node': name, 'lastUsed': {'$lt': unused_since}})):
            url = record.get('image')
            if not isinstance(url, str) or url in self.keep or url in in_use:
                continue
            try:
                outcome = engine.remove_unused_image(url, lambda url=url: url not in images_in_use(self.db, name))
            except Exception as e:
                if isinstance(e, (EngineError, pymongo.errors.ConnectionFailure)):
                    raise  # the node or the database is away: the next round tries again
                log.warning('image pruner: node %s: image %s not removed (%s)', name, url, loggable.describe(e))
                continue
            outcomes[url] = outcome
            if outcome == IMAGE_IN_USE:
                self.db[NODE_IMAGES].update_one({'_id': record['_id']}, {'$set': {'lastUsed': now()}})
            elif outcome in (IMAGE_REMOVED, IMAGE_GONE, IMAGE_LOCAL):
                # unless a batch used it since it was read: its new use starts the duration again
                self.db[NODE_IMAGES].delete_one({'_id': record['_id'], 'lastUsed': record['lastUsed']})
                if outcome == IMAGE_LOCAL:
                    log.info('image pruner: node %s: image %s came from no registry and is kept', name, url)
        return outcomes
