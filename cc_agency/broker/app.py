"""The module uwsgi loads (`wsgi-file = <site-packages>/cc_agency/broker/app.py`): it exposes `application`.

The configuration is read from $CC_AGENCY_CONF or `~/.config/cc-agency.yml`. A wrong file is reported as one
line naming the key (not a traceback) and the worker exits, so the operator sees the cause in the journal. For
local development run `ccagency-broker` (a plain Werkzeug server) instead.
"""
import sys

from cc_agency.broker.factory import create_app
from cc_agency.config import ConfigError

try:
    application = create_app()
except ConfigError as e:
    print('ccagency-broker: {}'.format(e), file=sys.stderr, flush=True)
    raise SystemExit(1)
