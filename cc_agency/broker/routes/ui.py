"""GET /ui/ and /ui/<asset>: the dashboard, a static single-page app shipped in the package, served by the broker.

Same origin as the API, so it needs no CORS; it calls the API with relative URLs (`../experiments` from `/ui/`),
so it works under any prefix the broker is mounted at (the seed's Apache `/cc`). Its files hold no data, so they
need no login; everything it shows comes from the API under the API's own rules. Every answer carries a strict
Content-Security-Policy: only the dashboard's own files run, nothing inline, nothing from elsewhere.
"""
import os

from flask import Blueprint, request, send_from_directory

blueprint = Blueprint('ui', __name__)
STATIC_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'ui', 'static')
INDEX = 'index.html'
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                           "frame-ancestors 'none'")
# what the dashboard sends with every API call, so a failed login answers without a Basic challenge: the
# browser would otherwise put its own password dialog over the dashboard's login form
DASHBOARD_REQUEST_HEADER = ('X-Requested-With', 'cc-agency-ui')


def _asset(name):
    response = send_from_directory(STATIC_DIR, name, max_age=0)  # safe join: no path leaves STATIC_DIR (404)
    response.headers['Content-Security-Policy'] = CONTENT_SECURITY_POLICY
    response.headers['X-Content-Type-Options'] = 'nosniff'
    response.headers['Referrer-Policy'] = 'no-referrer'
    response.headers['Cache-Control'] = 'no-cache'  # revalidated (ETag), so an upgrade shows at the next load
    return response


@blueprint.get('/ui/')
def dashboard():
    return _asset(INDEX)


@blueprint.get('/ui/<path:asset>')
def dashboard_asset(asset):
    return _asset(asset)


@blueprint.after_app_request
def no_basic_challenge_for_the_dashboard(response):
    name, value = DASHBOARD_REQUEST_HEADER
    if response.status_code == 401 and request.headers.get(name) == value:
        response.headers.pop('WWW-Authenticate', None)
    return response
