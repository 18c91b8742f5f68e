"""What a request handler needs: the database, the configuration, the waker, the authenticated user (`g.user`,
`g.principal`)."""
import functools

from bson import ObjectId
from bson.errors import InvalidId
from flask import current_app, g, request

from cc_agency import auth, login_guard
from cc_agency.broker.authenticator import authenticator_of
from cc_agency.broker.credentials import UnsupportedAuthorization, credentials
from cc_agency.broker.errors import ApiError, bad_request

EXTENSION = 'ccagency'
AUTH_EXTENSION = 'ccagency-auth'  # this process's Authenticator (caches, password check slots)

_UNAUTHORIZED = {'WWW-Authenticate': 'Basic realm="CC-Agency"'}


def broker():
    return current_app.extensions[EXTENSION]


def db():
    return broker().db


def authenticator():
    return authenticator_of(current_app.extensions, AUTH_EXTENSION, broker().conf['broker']['auth'])


def unauthorized(message='invalid credentials'):
    return ApiError(401, message, _UNAUTHORIZED)


def presented_credentials():
    """The request's credentials (Credentials), or a 401 when there are none or they are malformed."""
    try:
        given = credentials(request.headers.get('Authorization'))
    except UnsupportedAuthorization as e:
        raise unauthorized(str(e))
    if given is None:
        raise unauthorized('authentication required (HTTP Basic or Bearer token)')
    return given


def _authenticate(token_kinds):
    given = presented_credentials()
    try:
        if given.scheme == 'bearer':
            principal = authenticator().by_token(db(), given.secret, kinds=token_kinds)
        else:
            principal = authenticator().by_password(db(), given.username, given.secret, request.remote_addr)
    except login_guard.Blocked as e:
        raise ApiError(429, 'too many failed logins {}, try again in {} s'.format(
            'for this username' if e.by == 'username' else 'from this address', e.blocked_for_s),
            {'Retry-After': str(e.blocked_for_s)})
    except login_guard.Busy:
        raise ApiError(503, 'the broker is busy checking passwords, try again in a few seconds (a token from '
                       'GET /token or POST /login costs no password check)', {'Retry-After': '5'})
    if principal is None:
        raise unauthorized()
    return principal


def requires_auth(view=None, token_kinds=(auth.ACCESS,)):
    """The view runs with `g.user` (the user's document) and `g.principal` (user and presented token).
    `token_kinds`: the kinds of Bearer token the view takes (refresh tokens only where they are the point)."""
    if view is None:
        return functools.partial(requires_auth, token_kinds=token_kinds)

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        g.principal = _authenticate(token_kinds)
        g.user = g.principal.user
        return view(*args, **kwargs)
    return wrapper


def user_scope():
    """The filter that limits a query to what the current user may see: admins see all."""
    return {} if g.user.get('isAdmin') else {'username': g.user['username']}


def visible(doc):
    """Whether the current user may see the document (theirs, or any for an admin); False for None."""
    scope = user_scope()
    return doc is not None and ('username' not in scope or doc.get('username') == scope['username'])


def find_visible(collection, doc_id, projection=None):
    """The document `doc_id` of `collection` if the current user may see it (theirs, or any for an admin), else None.

    Read by _id alone and the owner checked here: with the owner in the filter too, SecantusDB's planner scans the
    whole collection (62 ms at 2,000 batches, against 0.8 ms by _id)."""
    fields = projection
    inclusion = projection and all(value is True or value == 1 for value in projection.values())
    if inclusion and 'username' not in projection:
        fields = dict(projection, username=1)  # the owner is read for the check
    doc = collection.find_one({'_id': doc_id}, fields)
    if not visible(doc):
        return None
    if fields is not projection:
        doc.pop('username', None)
    return doc


def shown(value, limit=100):
    """A client's value as quoted back in an error message: never the whole of a huge one."""
    return value if len(value) <= limit else value[:limit] + '...'


def object_id(value, name='id'):
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        raise bad_request('{} "{}" is not a valid id (24 hexadecimal digits)'.format(name, shown(value)))


_TRUE = ('1', 'true', 'yes', 'on')
_FALSE = ('0', 'false', 'no', 'off', '')


def bool_arg(name, default=False):
    value = request.args.get(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise bad_request('query parameter {}: "{}" is not a boolean (use true or false)'.format(name, shown(value)))


def int_arg(name, default, minimum=0, maximum=2 ** 31 - 1):
    """An integer query parameter within bounds (MongoDB refuses numbers beyond 64 bits: never pass them on)."""
    value = request.args.get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise bad_request('query parameter {}: "{}" is not an integer'.format(name, shown(value)))
    if not minimum <= number <= maximum:
        raise bad_request('query parameter {}: must be between {} and {}'.format(name, minimum, maximum))
    return number
