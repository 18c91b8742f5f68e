"""Authentication (Basic, token as Basic password, Bearer, expiry, blocking) and authorisation (each user sees and
cancels only their own work; admins see all), over real HTTP against broker processes and SecantusDB."""
import base64
import statistics
import time

import pytest
import requests
from bson import ObjectId

from cc_agency import auth
from tests.integration.api_support import PASSWORD, Api, broker, start_broker  # noqa: F401 (fixture)

ATTEMPTS, BLOCK_S, TOKEN_S = 3, 3, 2


@pytest.fixture(scope='module')
def strict(mongo_server, mongo_client):
    """A broker with short token validity and blocking, to watch both end."""
    server, db_name = start_broker(mongo_server, 'strict', **{
        'broker.auth.num_login_attempts': ATTEMPTS, 'broker.auth.block_for_seconds': BLOCK_S,
        'broker.auth.tokens_valid_for_seconds': TOKEN_S})
    try:
        yield Api(server, mongo_client[db_name])
    finally:
        server.stop()
        mongo_client.drop_database(db_name)


def get(api, path='/version', auth=None, headers=None):
    return requests.get(api.url + path, auth=auth, headers=headers, timeout=30)


def test_basic_auth(broker):
    username = broker.new_user()
    assert get(broker, auth=(username, PASSWORD)).status_code == 200


@pytest.mark.parametrize('headers', [{}, {'Authorization': 'Digest x'}, {'Authorization': 'Basic !!!'},
                                     {'Authorization': 'Bearer'}, {'Authorization': 'Bearer a=b'}])
def test_missing_or_malformed_credentials_are_401(broker, headers):
    response = get(broker, headers=headers)
    assert response.status_code == 401
    assert response.headers['Content-Type'] == 'application/json' and response.json()['message']
    assert response.headers['WWW-Authenticate'].startswith('Basic')


def test_wrong_password_and_unknown_user_look_the_same(broker):
    username = broker.new_user()
    wrong = get(broker, auth=(username, 'not-the-password'))
    unknown = get(broker, auth=('nobody-' + username, PASSWORD))
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


def test_password_longer_than_bcrypt_allows_is_a_plain_401(broker):
    username = broker.new_user()
    response = get(broker, auth=(username, 'x' * 100))
    assert response.status_code == 401 and response.json() == {'message': 'invalid credentials'}


def test_token_as_basic_password_and_as_bearer(broker):
    username = broker.new_user()
    token = broker.token(username)
    assert get(broker, auth=(username, token)).status_code == 200
    assert get(broker, headers={'Authorization': 'Bearer ' + token}).status_code == 200
    assert get(broker, headers={'Authorization': 'bearer ' + token}).status_code == 200
    # a token belongs to its user: someone else's name with it is a failed login
    other = broker.new_user()
    assert get(broker, auth=(other, token)).status_code == 401
    assert get(broker, headers={'Authorization': 'Bearer ' + token[:-2]}).status_code == 401


def test_non_ascii_names_and_passwords_in_utf_8_and_latin_1(broker):
    """RFC 7617 clients send UTF-8; requests (and so faice) sends Latin-1: both log in, also with a token."""
    username = broker.new_user('jörg', password='pässwörd')
    utf8 = 'Basic ' + base64.b64encode('{}:pässwörd'.format(username).encode()).decode()
    assert get(broker, headers={'Authorization': utf8}).status_code == 200
    assert get(broker, auth=(username, 'pässwörd')).status_code == 200  # requests encodes Latin-1
    token = broker.token(username, 'pässwörd')
    assert get(broker, auth=(username, token)).status_code == 200


def test_a_new_password_ends_old_tokens(broker):
    username = broker.new_user()
    token = broker.token(username)
    auth.create_or_update_user(broker.db, username, 'a-new-password', False, rounds=4)
    assert get(broker, headers={'Authorization': 'Bearer ' + token}).status_code == 401
    assert get(broker, auth=(username, 'a-new-password')).status_code == 200


def test_token_expires(strict):
    username = strict.new_user()
    body = requests.get(strict.url + '/token', auth=(username, PASSWORD), timeout=10).json()
    assert body['validForSeconds'] == TOKEN_S
    bearer = {'Authorization': 'Bearer ' + body['token']}
    assert get(strict, headers=bearer).status_code == 200
    time.sleep(TOKEN_S + 0.2)
    expired = get(strict, headers=bearer)
    assert expired.status_code == 401 and expired.json() == {'message': 'invalid credentials'}
    assert get(strict, auth=(username, body['token'])).status_code == 401
    assert get(strict, auth=(username, PASSWORD)).status_code == 200


def test_failed_logins_block_the_user_for_a_while(strict):
    username, bystander = strict.new_user(), strict.new_user()
    token = strict.token(username)
    for _ in range(ATTEMPTS):
        assert get(strict, auth=(username, 'wrong')).status_code == 401
    blocked = get(strict, auth=(username, PASSWORD))  # even the right password
    assert blocked.status_code == 429
    assert 'too many failed logins' in blocked.json()['message'] and int(blocked.headers['Retry-After']) >= 1
    # the same answer for a user that does not exist: blocking reveals nothing
    for _ in range(ATTEMPTS):
        get(strict, auth=('ghost-' + username, 'wrong'))
    ghost = get(strict, auth=('ghost-' + username, 'wrong'))
    assert ghost.status_code == 429 and ghost.json()['message'] == blocked.json()['message']
    # others log in as usual, and a token issued before still works (blocking stops password guessing)
    assert get(strict, auth=(bystander, PASSWORD)).status_code == 200
    assert get(strict, headers={'Authorization': 'Bearer ' + token}).status_code == 200
    time.sleep(BLOCK_S + 0.5)
    assert get(strict, auth=(username, PASSWORD)).status_code == 200


def test_fewer_failures_than_the_limit_do_not_block(strict):
    username = strict.new_user()
    for _ in range(ATTEMPTS - 1):
        assert get(strict, auth=(username, 'wrong')).status_code == 401
    assert get(strict, auth=(username, PASSWORD)).status_code == 200


def test_a_token_check_costs_no_password_hash(broker):
    """bcrypt with 13 rounds costs ~0.5 s a check on these machines; a token call must cost a fraction of it."""
    username = 'slow-{}'.format(ObjectId())
    auth.create_or_update_user(broker.db, username, PASSWORD, False, rounds=13)
    t0 = time.perf_counter()
    token = broker.token(username)  # the first Basic login of this user: one bcrypt check
    basic_s = time.perf_counter() - t0
    token_s = []
    for _ in range(7):
        t0 = time.perf_counter()
        assert get(broker, headers={'Authorization': 'Bearer ' + token}).status_code == 200
        token_s.append(time.perf_counter() - t0)
    assert basic_s > 0.1, 'bcrypt should be slow: {:.3f} s'.format(basic_s)
    assert statistics.median(token_s) < basic_s / 5, (basic_s, token_s)


# ------------------------------------------------------------------------------------------------ authorisation

@pytest.fixture(scope='module')
def two_users(broker):
    alice, bob = broker.user_session('alice'), broker.user_session('bob')
    admin = broker.user_session('admin', admin=True)
    experiments = {alice.username: broker.submit(alice, batches=2), bob.username: broker.submit(bob, batches=2)}
    batches = {name: [b['_id'] for b in broker.get(admin, '/batches', experimentId=e).json()]
               for name, e in experiments.items()}
    return alice, bob, admin, experiments, batches


def test_users_see_only_their_own_work(broker, two_users):
    alice, bob, _, experiments, batches = two_users
    for me, other in ((alice, bob), (bob, alice)):
        assert [e['_id'] for e in broker.get(me, '/experiments').json()] == [experiments[me.username]]
        assert sorted(b['_id'] for b in broker.get(me, '/batches').json()) == sorted(batches[me.username])
        assert broker.get(me, '/batches/count').json() == {'count': 2}
        assert broker.get(me, '/experiments/count').json() == {'count': 1}
        assert broker.get(me, '/batches', experimentId=experiments[other.username]).json() == []
        # another user's ids are "not found", exactly like ids that do not exist
        assert broker.get(me, '/experiments/' + experiments[other.username]).status_code == 404
        for path in ('/batches/{}', '/batches/{}/stdout', '/batches/{}/stderr'):
            assert broker.get(me, path.format(batches[other.username][0])).status_code == 404


def test_users_cannot_cancel_others_batches(broker, two_users):
    alice, bob, _, _, batches = two_users
    response = alice.delete(broker.url + '/batches/' + batches[bob.username][0], timeout=10)
    assert response.status_code == 404
    assert broker.get(bob, '/batches/' + batches[bob.username][0]).json()['state'] == 'registered'


def test_admin_sees_and_cancels_everything(broker, two_users):
    alice, bob, admin, experiments, batches = two_users
    listed = {e['_id'] for e in broker.get(admin, '/experiments', limit=1000).json()}
    assert set(experiments.values()) <= listed
    assert broker.get(admin, '/experiments/' + experiments[alice.username]).json()['username'] == alice.username
    assert broker.get(admin, '/batches/' + batches[bob.username][0]).status_code == 200
    response = admin.delete(broker.url + '/batches/' + batches[alice.username][1], timeout=10)
    assert response.status_code == 200 and response.json()['state'] == 'cancelled'
    assert broker.get(alice, '/batches/' + batches[alice.username][1]).json()['state'] == 'cancelled'
