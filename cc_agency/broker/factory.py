"""The broker's app factory: configuration in, a Flask app with one blueprint per resource out."""
import logging

from flask import Flask

from cc_agency.broker.errors import register_error_handlers
from cc_agency.broker.wake import ControllerWaker
from cc_agency.config import load_config
from cc_agency.db import database, ensure_indexes


class Broker:
    """Per-process state of the broker (one per uwsgi worker with lazy-apps)."""

    def __init__(self, conf):
        self.conf = conf
        self.db = database(conf)
        self.waker = ControllerWaker(conf['controller']['external_url'])


def create_app(conf=None, conf_path=None):
    """Build the broker app; `conf` (a parsed configuration) wins over `conf_path` and the default path."""
    from cc_agency.broker.routes import ROUTE_BLUEPRINTS
    from cc_agency.broker.context import EXTENSION

    if conf is None:
        conf = load_config(conf_path)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    app = Flask('cc_agency.broker')
    app.json.sort_keys = False
    app.extensions[EXTENSION] = Broker(conf)
    register_error_handlers(app)
    for blueprint in ROUTE_BLUEPRINTS:
        app.register_blueprint(blueprint)
    try:
        ensure_indexes(app.extensions[EXTENSION].db)
    except Exception as e:  # the database may come up after the broker; the controller creates them too
        logging.getLogger(__name__).warning('could not ensure indexes now: %s', type(e).__name__)
    return app
