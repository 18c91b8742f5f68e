"""Tokens over real HTTP against broker processes and SecantusDB: POST /login and POST /refreshtoken as cc-agency 9.3
answers them, DELETE /token, kinds that do not stand in for each other, expiries from `broker.auth.jwt` and capped
by the token a request came with, and the caches (a revocation here at once, in another process within
TOKEN_CACHE_TTL_S; a new password at once)."""
import time

import pytest
import requests

from cc_agency import auth
from cc_agency.auth_cache import TOKEN_CACHE_TTL_S
from cc_agency.broker.authenticator import Authenticator
from tests.integration.api_support import PASSWORD, Api, broker, start_broker  # noqa: F401 (fixture)
from localcluster.broker import BrokerServer

ACCESS_S, REFRESH_S, SEED_TOKEN_S = 2, 6, 4


@pytest.fixture(scope='module')
def jwt_broker(mongo_server, mongo_client):
    """A broker with cc-agency 9.3's `broker.auth.jwt` section: short access and refresh tokens."""
    server, db_name = start_broker(mongo_server, 'jwt', **{
        'broker.auth.tokens_valid_for_seconds': SEED_TOKEN_S,
        'broker.auth.jwt': {'secret_key': 'a 9.3 key, not used', 'access_token_expires': ACCESS_S,
                            'refresh_token_expires': REFRESH_S}})
    try:
        yield Api(server, mongo_client[db_name])
    finally:
        server.stop()
        mongo_client.drop_database(db_name)


def bearer(token):
    return {'Authorization': 'Bearer ' + token}


def login(api, username, password=PASSWORD):
    response = requests.post(api.url + '/login', auth=(username, password), timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def version(api, headers=None, auth=None):
    return requests.get(api.url + '/version', headers=headers, auth=auth, timeout=30).status_code


def test_login_answers_as_cc_agency_9_3(broker):
    username = broker.new_user()
    body = login(broker, username)
    assert set(body) == {'username', 'access_token', 'refresh_token'} and body['username'] == username
    assert body['access_token'] != body['refresh_token']
    assert version(broker, bearer(body['access_token'])) == 200
    assert version(broker, auth=(username, body['access_token'])) == 200  # as the Basic password too
    stored = broker.db['tokens'].find_one({'tokenHash': auth.token_hash(body['access_token'])})
    assert stored['kind'] == 'access' and 'access_token' not in str(stored) and body['access_token'] not in str(stored)


def test_wrong_login_is_a_json_401(broker):
    username = broker.new_user()
    response = requests.post(broker.url + '/login', auth=(username, 'wrong'), timeout=30)
    assert response.status_code == 401 and response.json() == {'message': 'invalid credentials'}
    assert requests.post(broker.url + '/login', timeout=30).status_code == 401


def test_a_refresh_token_is_no_access_token_and_an_access_token_no_refresh_token(broker):
    username = broker.new_user()
    body = login(broker, username)
    assert version(broker, bearer(body['refresh_token'])) == 401
    assert version(broker, auth=(username, body['refresh_token'])) == 401
    for token in (body['access_token'], 'not-a-token'):
        response = requests.post(broker.url + '/refreshtoken', headers=bearer(token), timeout=30)
        assert response.status_code == 401 and 'refresh token' in response.json()['message']
    basic = requests.post(broker.url + '/refreshtoken', auth=(username, PASSWORD), timeout=30)
    assert basic.status_code == 401
    refreshed = requests.post(broker.url + '/refreshtoken', headers=bearer(body['refresh_token']), timeout=30)
    assert refreshed.status_code == 200 and set(refreshed.json()) == {'access_token'}
    assert version(broker, bearer(refreshed.json()['access_token'])) == 200


def test_expiries_come_from_broker_auth_jwt(jwt_broker):
    username = jwt_broker.new_user()
    body = login(jwt_broker, username)
    seed_token = jwt_broker.token(username)  # GET /token: the seed's tokens_valid_for_seconds
    time.sleep(ACCESS_S + 0.3)
    assert version(jwt_broker, bearer(body['access_token'])) == 401  # expired (also when it was cached)
    assert version(jwt_broker, bearer(seed_token)) == 200
    refreshed = requests.post(jwt_broker.url + '/refreshtoken', headers=bearer(body['refresh_token']), timeout=30)
    assert refreshed.status_code == 200
    assert version(jwt_broker, bearer(refreshed.json()['access_token'])) == 200
    time.sleep(REFRESH_S - ACCESS_S)
    assert requests.post(jwt_broker.url + '/refreshtoken', headers=bearer(body['refresh_token']),
                         timeout=30).status_code == 401


def test_without_a_jwt_section_tokens_last_tokens_valid_for_seconds(broker):
    username = broker.new_user()
    before = time.time()
    body = login(broker, username)
    valid_for_s = broker.conf['broker']['auth']['tokens_valid_for_seconds']
    for kind in ('access_token', 'refresh_token'):
        stored = broker.db['tokens'].find_one({'tokenHash': auth.token_hash(body[kind])})
        assert before + valid_for_s - 1 <= stored['expiresAt'] <= time.time() + valid_for_s


def test_a_token_never_mints_a_token_that_outlives_it(jwt_broker):
    username = jwt_broker.new_user()
    body = login(jwt_broker, username)  # access token: ACCESS_S
    short_expiry = jwt_broker.db['tokens'].find_one({'tokenHash': auth.token_hash(body['access_token'])})['expiresAt']
    minted = requests.get(jwt_broker.url + '/token', headers=bearer(body['access_token']), timeout=30).json()
    assert minted['validForSeconds'] <= ACCESS_S < SEED_TOKEN_S
    again = requests.post(jwt_broker.url + '/login', auth=(username, body['access_token']), timeout=30).json()
    assert again['username'] == username
    for token in (minted['token'], again['access_token'], again['refresh_token']):
        expiry = jwt_broker.db['tokens'].find_one({'tokenHash': auth.token_hash(token)})['expiresAt']
        assert expiry <= short_expiry
    time.sleep(ACCESS_S + 0.3)
    assert version(jwt_broker, bearer(minted['token'])) == 401
    assert requests.post(jwt_broker.url + '/refreshtoken', headers=bearer(again['refresh_token']),
                         timeout=30).status_code == 401
    # an access token bought with a refresh token ends with it at the latest
    fresh = login(jwt_broker, username)
    refresh_expiry = jwt_broker.db['tokens'].find_one({'tokenHash': auth.token_hash(fresh['refresh_token'])})
    refreshed = requests.post(jwt_broker.url + '/refreshtoken', headers=bearer(fresh['refresh_token']),
                              timeout=30).json()['access_token']
    stored = jwt_broker.db['tokens'].find_one({'tokenHash': auth.token_hash(refreshed)})
    assert stored['expiresAt'] <= refresh_expiry['expiresAt']


def test_delete_token_revokes_the_presented_one_at_once(broker):
    username = broker.new_user()
    first, second = broker.token(username), broker.token(username)
    assert version(broker, bearer(first)) == 200  # now in this process's cache
    response = requests.delete(broker.url + '/token', headers=bearer(first), timeout=30)
    assert response.status_code == 200 and response.json() == {'revoked': 1}
    assert version(broker, bearer(first)) == 401
    assert version(broker, auth=(username, first)) == 401
    assert version(broker, bearer(second)) == 200
    # a refresh token can revoke itself (a web UI's logout)
    body = login(broker, username)
    assert requests.delete(broker.url + '/token', headers=bearer(body['refresh_token']), timeout=30).json() == \
        {'revoked': 1}
    assert requests.post(broker.url + '/refreshtoken', headers=bearer(body['refresh_token']),
                         timeout=30).status_code == 401
    assert version(broker, bearer(body['access_token'])) == 200


def test_delete_token_all_revokes_every_token_of_the_user_only(broker):
    username, other = broker.new_user(), broker.new_user()
    tokens = [broker.token(username) for _ in range(2)] + list(login(broker, username).values())[1:]
    others = broker.token(other)
    for token in tokens[:3]:
        assert version(broker, bearer(token)) == 200
    response = requests.delete(broker.url + '/token', params={'all': 'true'}, auth=(username, PASSWORD), timeout=30)
    assert response.status_code == 200 and response.json() == {'revoked': 4}
    assert all(version(broker, bearer(token)) == 401 for token in tokens[:3])
    assert requests.post(broker.url + '/refreshtoken', headers=bearer(tokens[3]), timeout=30).status_code == 401
    assert version(broker, bearer(others)) == 200
    assert version(broker, auth=(username, PASSWORD)) == 200  # the password still works


def test_delete_token_with_a_password_and_no_token_is_a_400(broker):
    username = broker.new_user()
    response = requests.delete(broker.url + '/token', auth=(username, PASSWORD), timeout=30)
    assert response.status_code == 400 and 'all=true' in response.json()['message']
    bad = requests.delete(broker.url + '/token', params={'all': 'maybe'}, auth=(username, PASSWORD), timeout=30)
    assert bad.status_code == 400


def test_another_process_honours_a_revocation_within_the_cache_ttl(broker):
    """Two broker processes on one database: the one that did not revoke trusts its cache for at most
    TOKEN_CACHE_TTL_S."""
    other = BrokerServer(broker.conf).start()
    try:
        username = broker.new_user()
        token = broker.token(username)
        assert version(Api(other, broker.db), bearer(token)) == 200  # cached in the other process
        revoked_at = time.monotonic()
        assert requests.delete(broker.url + '/token', headers=bearer(token), timeout=30).status_code == 200
        while version(Api(other, broker.db), bearer(token)) == 200:
            assert time.monotonic() - revoked_at < TOKEN_CACHE_TTL_S + 1, 'still accepted after the cache TTL'
            time.sleep(0.2)
        assert time.monotonic() - revoked_at <= TOKEN_CACHE_TTL_S + 1
    finally:
        other.stop()


def test_a_new_password_ends_the_cached_old_one_at_once(broker):
    username = broker.new_user()
    assert version(broker, auth=(username, PASSWORD)) == 200  # verified, cached
    assert version(broker, auth=(username, PASSWORD)) == 200  # from the cache
    auth.create_or_update_user(broker.db, username, 'a-newer-password', False, rounds=4)
    assert version(broker, auth=(username, PASSWORD)) == 401
    assert version(broker, auth=(username, 'a-newer-password')) == 200


def test_a_cached_password_is_not_checked_again(broker):
    """The password cache in the process: a second Basic call of the same user costs no bcrypt (13 rounds, ~0.5 s
    here), a wrong password still does."""
    username = broker.new_user()
    auth.create_or_update_user(broker.db, username, PASSWORD, False, rounds=13)
    t0 = time.perf_counter()
    assert version(broker, auth=(username, PASSWORD)) == 200
    first_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    assert version(broker, auth=(username, PASSWORD)) == 200
    cached_s = time.perf_counter() - t0
    assert first_s > 0.1 and cached_s < first_s / 5, (first_s, cached_s)


def test_the_authenticator_keeps_no_password(broker):
    """What the cache holds are HMAC digests: no password, in no form the broker could give back."""
    authenticator = Authenticator(broker.conf['broker']['auth'])
    username = broker.new_user()
    assert authenticator.by_password(broker.db, username, PASSWORD, '127.0.0.1').user['username'] == username
    [(key, (_, value))] = list(authenticator.passwords._entries.items())
    assert value is True and len(key) == 32 and PASSWORD.encode() not in key
