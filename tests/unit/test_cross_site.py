"""cc_agency.broker.cross_site.CrossSitePolicy: which state-changing requests are refused, who gets CORS answers."""
import pytest

from cc_agency.broker.cross_site import CrossSitePolicy, normalized_origin

POLICY = CrossSitePolicy('https://example.com/cc', ['https://ui.example.org', 'http://localhost:3000'])


@pytest.mark.parametrize('value, origin', [
    ('https://example.com', 'https://example.com'),
    ('HTTPS://Example.COM:443', 'https://example.com'),
    ('http://example.com:80/', 'http://example.com'),
    ('http://localhost:3000', 'http://localhost:3000'),
    ('http://[::1]:8080', 'http://[::1]:8080'),
    ('null', None), ('', None), (None, None), ('file://x', None), ('https://', None), ('http://a:99999', None),
])
def test_normalized_origin(value, origin):
    assert normalized_origin(value) == origin


@pytest.mark.parametrize('method, origin, fetch_site', [
    ('POST', None, None),  # curl -d, faice, requests: neither header
    ('POST', 'https://example.com', 'same-origin'),  # the broker's own pages
    ('DELETE', 'https://example.com:443', None),
    ('POST', 'https://ui.example.org', 'cross-site'),  # a listed web UI
    ('DELETE', 'http://localhost:3000', 'same-site'),
    ('GET', 'https://evil.example', 'cross-site'),  # reading changes nothing (and CORS keeps the answer unread)
    ('OPTIONS', 'https://evil.example', 'cross-site'),
    ('POST', None, 'same-origin'),
    ('POST', None, 'none'),  # typed into the address bar
])
def test_allowed(method, origin, fetch_site):
    assert POLICY.refusal(method, origin, fetch_site) is None


@pytest.mark.parametrize('method, origin, fetch_site', [
    ('POST', 'https://evil.example', None),
    ('POST', 'https://evil.example', 'cross-site'),
    ('DELETE', 'null', None),  # sandboxed frames, local files
    ('POST', None, 'cross-site'),
    ('POST', 'https://example.com.evil.example', None),
    ('POST', 'https://ui.example.org.evil.example', 'cross-site'),
    ('POST', 'http://example.com', None),  # another scheme is another origin
    ('delete', 'https://evil.example', 'cross-site'),
])
def test_refused(method, origin, fetch_site):
    assert 'cross-site request refused' in POLICY.refusal(method, origin, fetch_site)


def test_cors_answers_only_listed_origins_with_the_listed_value():
    assert POLICY.cors_origin('https://ui.example.org') == 'https://ui.example.org'
    assert POLICY.cors_origin('https://UI.example.org:443') == 'https://ui.example.org'
    for origin in ('https://evil.example', 'https://example.com', 'null', None, '*'):
        assert POLICY.cors_origin(origin) is None


def test_cors_is_off_by_default():
    policy = CrossSitePolicy('https://example.com/cc')
    assert policy.cors_origins == {} and policy.cors_origin('https://ui.example.org') is None
    assert policy.refusal('POST', 'https://ui.example.org', 'cross-site')


def test_a_page_of_the_address_the_request_was_sent_to_is_the_brokers_own():
    """The dashboard at /ui/ of a broker reached by another name than external_url (or without one) may change
    state; a page of another site may not, whatever address it sends to."""
    assert POLICY.refusal('DELETE', 'http://127.0.0.1:8080', 'same-origin', 'http://127.0.0.1:8080/') is None
    assert CrossSitePolicy(None).refusal('POST', 'http://127.0.0.1:8080', None, 'http://127.0.0.1:8080/') is None
    assert CrossSitePolicy(None).refusal('POST', 'https://evil.example', None, 'http://127.0.0.1:8080/')
    assert POLICY.refusal('DELETE', 'http://127.0.0.1:8080', 'same-origin', 'http://127.0.0.1:9090/')
