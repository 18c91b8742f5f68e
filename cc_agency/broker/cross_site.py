"""Requests that browsers send for other sites: state changes from other sites are refused; CORS only for the
origins the operator lists.

A browser adds the Basic credentials it remembers to every request to the broker, also to one that a page of
another site makes it send (a form, a no-cors fetch). So a state-changing request (not GET, HEAD or OPTIONS) is
refused with 403, before any authentication, when the browser marks it as cross-site (`Sec-Fetch-Site:
cross-site`) or its `Origin` is neither the broker's own (that of broker.external_url, or the scheme and Host the
request itself was sent to, which is what a same-origin page such as the dashboard at /ui/ sends) nor one of
broker.cors_origins; a cross-site request from a listed origin (a web UI served elsewhere) is let through.
Clients that are not browsers (curl, faice, requests) send neither header and are not affected.

CORS is off unless broker.cors_origins lists origins. Then a request whose Origin is exactly one of them gets
`Access-Control-Allow-Origin` with that listed origin (never a value taken from a request that is not listed), and
a preflight OPTIONS from one of them to a route that exists is answered (204); any other OPTIONS stays a 405.
"""
from urllib.parse import urlsplit

from flask import request
from werkzeug.exceptions import MethodNotAllowed

from cc_agency.broker.errors import ApiError

SAFE_METHODS = frozenset(['GET', 'HEAD', 'OPTIONS'])
CORS_ALLOW_METHODS = 'GET, POST, DELETE'
CORS_ALLOW_HEADERS = 'Authorization, Content-Type'
CORS_EXPOSE_HEADERS = 'Retry-After, WWW-Authenticate'
PREFLIGHT_MAX_AGE_S = 600
DEFAULT_PORTS = {'http': 80, 'https': 443}


def normalized_origin(value):
    """`scheme://host[:port]` in lower case without a default port, as browsers send Origin; None if it is not one
    (e.g. the `null` origin of sandboxed pages and local files) (pure)."""
    try:
        parts = urlsplit((value or '').strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ':' in host:
        host = '[{}]'.format(host)  # IPv6
    if port is None or port == DEFAULT_PORTS[parts.scheme.lower()]:
        return '{}://{}'.format(parts.scheme.lower(), host)
    return '{}://{}:{}'.format(parts.scheme.lower(), host, port)


class CrossSitePolicy:
    """Which origins may change state and which get CORS answers (pure)."""

    def __init__(self, external_url, cors_origins=()):
        self.cors_origins = {normalized_origin(origin): origin for origin in cors_origins or ()}
        self.own_origin = normalized_origin(external_url) if external_url else None

    def cors_origin(self, origin):
        """The listed origin to answer `origin` with, or None (not listed, or CORS off)."""
        return self.cors_origins.get(normalized_origin(origin)) if origin else None

    def refusal(self, method, origin, fetch_site, request_origin=None):
        """Why a request is refused as cross-site (a message), or None when it may go on. `request_origin`: the
        scheme and Host the request was sent to."""
        if method.upper() in SAFE_METHODS:
            return None
        listed = self.cors_origin(origin) is not None
        own = {self.own_origin, normalized_origin(request_origin)} - {None}
        if origin is not None and not listed and normalized_origin(origin) not in own:
            return 'cross-site request refused: origin {} may not change anything here'.format(origin[:100])
        if (fetch_site or '').strip().lower() == 'cross-site' and not listed:
            return 'cross-site request refused: the browser marked it as sent for another site'
        return None


def register_cross_site(app, conf):
    """The before- and after-request hooks of the policy for `conf`."""
    policy = CrossSitePolicy(conf['broker'].get('external_url'), conf['broker'].get('cors_origins'))

    @app.before_request
    def refuse_cross_site():
        origin = request.headers.get('Origin')
        if request.method == 'OPTIONS' and 'Access-Control-Request-Method' in request.headers:
            allowed = policy.cors_origin(origin)
            route_exists = request.url_rule is not None or isinstance(request.routing_exception, MethodNotAllowed)
            if allowed and route_exists:
                preflight = app.response_class(status=204, headers={
                    'Access-Control-Allow-Methods': CORS_ALLOW_METHODS,
                    'Access-Control-Allow-Headers': CORS_ALLOW_HEADERS,
                    'Access-Control-Max-Age': str(PREFLIGHT_MAX_AGE_S)})
                del preflight.headers['Content-Type']  # no body
                return preflight
        reason = policy.refusal(request.method, origin, request.headers.get('Sec-Fetch-Site'), request.host_url)
        if reason:
            raise ApiError(403, reason)
        return None

    @app.after_request
    def cors_headers(response):
        if not policy.cors_origins:
            return response
        response.vary.add('Origin')
        allowed = policy.cors_origin(request.headers.get('Origin'))
        if allowed:
            response.headers['Access-Control-Allow-Origin'] = allowed
            # cc-agency 9.3 answered its web UI with credentials allowed; only ever for a listed origin
            response.headers['Access-Control-Allow-Credentials'] = 'true'
            response.headers['Access-Control-Expose-Headers'] = CORS_EXPOSE_HEADERS
        return response
