"""The broker's app factory: configuration in, a Flask app with one blueprint per resource out."""
import logging
import time

import pymongo.errors
from flask import Flask

from cc_agency.broker.cross_site import register_cross_site
from cc_agency.broker.errors import register_error_handlers
from cc_agency.broker.wake import ControllerWaker
from cc_agency.config import load_config, wake_connect_url
from cc_agency.db import database, ensure_indexes

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 64 * 1024 * 1024  # a RED of 10,000 batches is a few MB; anything far larger is refused (413)
INDEX_RETRY_S = 10


class Broker:
    """Per-process state of the broker (one per uwsgi worker with lazy-apps)."""

    def __init__(self, conf):
        self.conf = conf
        self.db = database(conf)
        self.waker = ControllerWaker(wake_connect_url(conf))
        self.indexes_ready = False
        self._indexes_tried_at = None

    def ensure_indexes(self):
        """Create the indexes once; the database may come up after the broker, so a failure is retried at most
        every INDEX_RETRY_S on a later request instead of failing the start."""
        if self.indexes_ready or (self._indexes_tried_at is not None
                                  and time.monotonic() - self._indexes_tried_at < INDEX_RETRY_S):
            return
        self._indexes_tried_at = time.monotonic()
        try:
            ensure_indexes(self.db)
            self.indexes_ready = True
        except pymongo.errors.PyMongoError as e:
            log.warning('could not ensure indexes now (%s), will retry', type(e).__name__)


def create_app(conf=None, conf_path=None):
    """Build the broker app; `conf` (a parsed configuration) wins over `conf_path` and the default path."""
    from cc_agency.broker.routes import ROUTE_BLUEPRINTS
    from cc_agency.broker.context import EXTENSION

    if conf is None:
        conf = load_config(conf_path)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    app = Flask('cc_agency.broker')
    app.json.sort_keys = False
    app.config['MAX_CONTENT_LENGTH'] = MAX_BODY_BYTES
    broker = Broker(conf)
    app.extensions[EXTENSION] = broker
    register_error_handlers(app)
    for blueprint in ROUTE_BLUEPRINTS:
        app.register_blueprint(blueprint)
    for rule in app.url_map.iter_rules():
        # an OPTIONS request is a 405 (JSON, with Allow) like any other method a route does not serve, but for a
        # CORS preflight from a listed origin (cc_agency.broker.cross_site)
        rule.methods.discard('OPTIONS')
        rule.provide_automatic_options = False
    app.before_request(broker.ensure_indexes)
    register_cross_site(app, conf)
    broker.ensure_indexes()
    return app
