"""The module uwsgi loads (`wsgi-file = <site-packages>/cc_agency/broker/app.py`): it exposes `application`.

The configuration is read from $CC_AGENCY_CONF or `~/.config/cc-agency.yml`. For local development run
`ccagency-broker` (a plain Werkzeug server) instead.
"""
from cc_agency.broker.factory import create_app

application = create_app()
