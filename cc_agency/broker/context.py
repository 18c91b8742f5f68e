"""What a request handler needs: the database, the configuration, the waker, the authenticated user."""
import functools

from bson import ObjectId
from bson.errors import InvalidId
from flask import current_app, g, request

from cc_agency import auth
from cc_agency.broker.credentials import UnsupportedAuthorization, credentials
from cc_agency.broker.errors import ApiError, bad_request

EXTENSION = 'ccagency'

_UNAUTHORIZED = {'WWW-Authenticate': 'Basic realm="CC-Agency"'}


def broker():
    return current_app.extensions[EXTENSION]


def db():
    return broker().db


def _authenticate():
    try:
        given = credentials(request.headers.get('Authorization'))
    except UnsupportedAuthorization as e:
        raise ApiError(401, str(e), _UNAUTHORIZED)
    if given is None:
        raise ApiError(401, 'authentication required (HTTP Basic or Bearer token)', _UNAUTHORIZED)
    if given.scheme == 'bearer':
        result = auth.authenticate_bearer(db(), given.secret)
    else:
        result = auth.authenticate_password(db(), given.username, given.secret, broker().conf['broker']['auth'])
    if result.blocked_for_s:
        raise ApiError(429, 'too many failed logins for this username, try again in {} s'.format(result.blocked_for_s),
                       {'Retry-After': str(result.blocked_for_s)})
    if result.user is None:
        raise ApiError(401, 'invalid credentials', _UNAUTHORIZED)
    return result.user


def requires_auth(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        g.user = _authenticate()
        return view(*args, **kwargs)
    return wrapper


def user_scope():
    """The filter that limits a query to what the current user may see: admins see all."""
    return {} if g.user.get('isAdmin') else {'username': g.user['username']}


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
