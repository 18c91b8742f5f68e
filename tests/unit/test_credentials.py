"""cc_agency.broker.credentials: what an Authorization header holds."""
import base64

import pytest

from cc_agency.broker.credentials import Credentials, UnsupportedAuthorization, credentials


def basic(raw):
    return 'Basic ' + base64.b64encode(raw).decode()


@pytest.mark.parametrize('header, expected', [
    (None, None),
    ('', None),
    (basic(b'alice:pw'), Credentials('basic', 'alice', 'pw')),
    (basic(b'alice:pw:with:colons'), Credentials('basic', 'alice', 'pw:with:colons')),
    (basic(b'alice:'), Credentials('basic', 'alice', '')),
    (basic('jörg:pässwörd'.encode('utf-8')), Credentials('basic', 'jörg', 'pässwörd')),
    (basic('jörg:pässwörd'.encode('latin-1')), Credentials('basic', 'jörg', 'pässwörd')),  # what requests sends
    ('basic ' + base64.b64encode(b'a:b').decode(), Credentials('basic', 'a', 'b')),
    ('Bearer abc.DEF-123', Credentials('bearer', None, 'abc.DEF-123')),
    ('bearer   tok  ', Credentials('bearer', None, 'tok')),
])
def test_credentials(header, expected):
    assert credentials(header) == expected


@pytest.mark.parametrize('header', ['Basic !!!', basic(b'no-colon'), 'Basic', 'Bearer', 'Bearer a b',
                                    'Digest username="a"', 'Token abc'])
def test_unsupported_or_malformed(header):
    with pytest.raises(UnsupportedAuthorization):
        credentials(header)
