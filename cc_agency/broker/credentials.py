"""Read the credentials of a request from its Authorization header.

Basic: `user:password` in base64, decoded as UTF-8 (RFC 7617), else as Latin-1, which is what `requests` and other
older clients send for non-ASCII names and passwords. Bearer: the token as it is. Anything else is unsupported.
"""
import base64
import binascii
from collections import namedtuple

Credentials = namedtuple('Credentials', 'scheme username secret')  # scheme: 'basic' | 'bearer'


class UnsupportedAuthorization(ValueError):
    pass


def _decode(raw):
    try:
        return raw.decode('utf-8')
    except UnicodeDecodeError:
        return raw.decode('latin-1')


def credentials(header):
    """The credentials in an Authorization header value, None without one; UnsupportedAuthorization otherwise."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(' ')
    scheme, value = scheme.lower(), value.strip()
    if scheme == 'bearer' and value and ' ' not in value:
        return Credentials('bearer', None, value)
    if scheme == 'basic':
        try:
            username, colon, password = _decode(base64.b64decode(value, validate=True)).partition(':')
        except (binascii.Error, ValueError):
            raise UnsupportedAuthorization('malformed Basic credentials')
        if colon:
            return Credentials('basic', username, password)
        raise UnsupportedAuthorization('malformed Basic credentials')
    raise UnsupportedAuthorization('unsupported authorization scheme (use Basic or Bearer)')
