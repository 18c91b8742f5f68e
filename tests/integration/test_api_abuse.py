"""Abuse of the API (issue 12), over real HTTP against broker processes and SecantusDB: parallel password guesses
cannot get past `num_login_attempts`, random usernames from one address are throttled before their hashes are
computed, browsers' cross-site state changes are refused while curl keeps working, and CORS answers only the
listed origins."""
import http.client
import json
import subprocess
import uuid
from base64 import b64encode
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
import requests

from cc_agency import login_guard
from tests import reds
from tests.integration.api_support import PASSWORD, Api, broker, start_broker  # noqa: F401 (fixture)

ATTEMPTS = 2
UI_ORIGIN = 'http://ui.example:8080'


@pytest.fixture(scope='module')
def guarded(mongo_server, mongo_client):
    """A broker with a small `num_login_attempts`, bcrypt of the seed's default cost for unknown users, and a
    listed web UI origin."""
    server, db_name = start_broker(mongo_server, 'guarded', **{
        'broker.auth.num_login_attempts': ATTEMPTS, 'broker.auth.block_for_seconds': 30,
        'broker.auth.bcrypt_rounds': 10, 'broker.cors_origins': [UI_ORIGIN]})
    try:
        yield Api(server, mongo_client[db_name])
    finally:
        server.stop()
        mongo_client.drop_database(db_name)


def basic(username, password):
    return 'Basic ' + b64encode('{}:{}'.format(username, password).encode()).decode()


def get_version_from(api, source_ip, authorization):
    """GET /version from a loopback address of our choice (127.0.0.0/8 is all ours): another client address."""
    parts = urlsplit(api.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60, source_address=(source_ip, 0))
    try:
        connection.request('GET', '/version', headers={'Authorization': authorization})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b'null')
    finally:
        connection.close()


def test_parallel_wrong_logins_cannot_get_past_num_login_attempts(guarded):
    username = guarded.new_user('target')
    with ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(lambda i: requests.get(guarded.url + '/version', auth=(username, 'guess-{}'.format(i)),
                                                        timeout=60).status_code, range(24)))
    assert set(statuses) <= {401, 429}
    assert statuses.count(401) <= ATTEMPTS  # a 401 is an answer from a bcrypt check
    # every password that was checked is a failure on record, written before its check: no more than the limit
    assert guarded.db['login_failures'].count_documents({'username': username}) <= ATTEMPTS
    blocked = requests.get(guarded.url + '/version', auth=(username, PASSWORD), timeout=30)
    assert blocked.status_code == 429 and 'for this username' in blocked.json()['message']
    assert int(blocked.headers['Retry-After']) >= 1


def test_random_usernames_from_one_address_are_throttled_before_hashing(guarded):
    limit = login_guard.address_limit(guarded.conf['broker']['auth'])
    bystander = guarded.new_user('bystander')
    token = guarded.token(bystander)
    source = '127.0.0.{}'.format(20 + uuid.uuid4().int % 200)
    names = ['random-{}'.format(uuid.uuid4().hex[:12]) for _ in range(2 * limit)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda name: get_version_from(guarded, source, basic(name, 'x')), names))
    statuses = [status for status, _ in answers]
    assert set(statuses) <= {401, 429}
    assert statuses.count(401) <= limit and statuses.count(429) >= limit
    assert guarded.db['login_failures'].count_documents({'address': source}) <= limit
    assert 'from this address' in [body for status, body in answers if status == 429][0]['message']
    # the address is refused even the right password of a real user (also one verified a moment ago, which the
    # broker would otherwise trust from its cache); tokens and other addresses are not
    status, body = get_version_from(guarded, source, basic(bystander, PASSWORD))
    assert status == 429 and 'from this address' in body['message']
    assert get_version_from(guarded, source, 'Bearer ' + token)[0] == 200
    assert get_version_from(guarded, '127.0.0.3', basic(bystander, PASSWORD))[0] == 200


# ------------------------------------------------------------------------------------------------ cross-site

def test_cross_site_state_changes_are_refused_before_anything_happens(broker):
    username = broker.new_user()
    experiment_id = broker.submit(broker.session(username), batches=1)
    [batch] = broker.get(broker.session(username), '/batches', experimentId=experiment_id).json()
    count_before = broker.db['experiments'].count_documents({})
    for headers in ({'Origin': 'https://evil.example'}, {'Sec-Fetch-Site': 'cross-site'},
                    {'Origin': 'null'}, {'Origin': 'https://evil.example', 'Sec-Fetch-Site': 'cross-site'}):
        posted = requests.post(broker.url + '/red', json=reds.red_of(1), auth=(username, PASSWORD), headers=headers,
                               timeout=30)
        assert posted.status_code == 403 and 'cross-site' in posted.json()['message'], posted.text
        assert posted.headers['Content-Type'] == 'application/json'
        deleted = requests.delete(broker.url + '/batches/' + batch['_id'], auth=(username, PASSWORD), headers=headers,
                                  timeout=30)
        assert deleted.status_code == 403
        logged_in = requests.post(broker.url + '/login', auth=(username, PASSWORD), headers=headers, timeout=30)
        assert logged_in.status_code == 403
    assert broker.db['experiments'].count_documents({}) == count_before
    assert broker.get(broker.session(username), '/batches/' + batch['_id']).json()['state'] == 'registered'
    # reading is not refused (and without CORS the browser keeps the answer from the other site)
    read = requests.get(broker.url + '/batches/' + batch['_id'], auth=(username, PASSWORD),
                        headers={'Origin': 'https://evil.example', 'Sec-Fetch-Site': 'cross-site'}, timeout=30)
    assert read.status_code == 200 and 'Access-Control-Allow-Origin' not in read.headers


def test_the_brokers_own_origin_and_clients_without_browser_headers_keep_working(broker, tmp_path):
    username = broker.new_user()
    own = requests.post(broker.url + '/red', json=reds.red_of(1), auth=(username, PASSWORD), timeout=30,
                        headers={'Origin': 'http://127.0.0.1', 'Sec-Fetch-Site': 'same-origin'})  # external_url's
    assert own.status_code == 200, own.text
    red_file = tmp_path / 'red.json'
    red_file.write_text(json.dumps(reds.red_of(1)))
    curl = subprocess.run(['curl', '-sS', '-u', '{}:{}'.format(username, PASSWORD), '-d', '@' + str(red_file),
                           broker.url + '/red'], capture_output=True, text=True, timeout=60)
    assert curl.returncode == 0 and 'experimentId' in json.loads(curl.stdout), curl.stdout + curl.stderr


# ------------------------------------------------------------------------------------------------------ CORS

def test_cors_is_off_by_default(broker):
    username = broker.new_user()
    preflight = requests.options(broker.url + '/batches', timeout=30, headers={
        'Origin': UI_ORIGIN, 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'authorization'})
    assert preflight.status_code == 405 and preflight.json()['message']
    assert 'Access-Control-Allow-Origin' not in preflight.headers
    read = requests.get(broker.url + '/version', auth=(username, PASSWORD), headers={'Origin': UI_ORIGIN}, timeout=30)
    assert read.status_code == 200 and 'Access-Control-Allow-Origin' not in read.headers
    assert requests.post(broker.url + '/login', auth=(username, PASSWORD), headers={'Origin': UI_ORIGIN},
                         timeout=30).status_code == 403


def test_cors_answers_exactly_the_listed_origins(guarded):
    username = guarded.new_user()
    preflight = requests.options(guarded.url + '/batches/0123456789abcdef01234567', timeout=30, headers={
        'Origin': UI_ORIGIN, 'Access-Control-Request-Method': 'DELETE',
        'Access-Control-Request-Headers': 'authorization,content-type'})
    assert preflight.status_code == 204, preflight.text
    assert preflight.headers['Access-Control-Allow-Origin'] == UI_ORIGIN
    assert 'DELETE' in preflight.headers['Access-Control-Allow-Methods']
    assert {'authorization', 'content-type'} <= {h.strip().lower() for h in
                                                 preflight.headers['Access-Control-Allow-Headers'].split(',')}
    for origin in ('http://evil.example', 'http://ui.example:8081', 'http://ui.example:8080.evil.example', 'null'):
        refused = requests.options(guarded.url + '/batches', timeout=30, headers={
            'Origin': origin, 'Access-Control-Request-Method': 'GET'})
        assert refused.status_code == 405 and 'Access-Control-Allow-Origin' not in refused.headers
        read = requests.get(guarded.url + '/version', auth=(username, PASSWORD), headers={'Origin': origin},
                            timeout=30)
        assert 'Access-Control-Allow-Origin' not in read.headers and 'Origin' in read.headers['Vary']
    assert requests.options(guarded.url + '/no-such-route', timeout=30, headers={
        'Origin': UI_ORIGIN, 'Access-Control-Request-Method': 'GET'}).status_code == 404
    logged_in = requests.post(guarded.url + '/login', auth=(username, PASSWORD), timeout=30,
                              headers={'Origin': UI_ORIGIN, 'Sec-Fetch-Site': 'cross-site'})
    assert logged_in.status_code == 200
    assert logged_in.headers['Access-Control-Allow-Origin'] == UI_ORIGIN and 'Origin' in logged_in.headers['Vary']
    unauthorized = requests.get(guarded.url + '/version', headers={'Origin': UI_ORIGIN}, timeout=30)
    assert unauthorized.status_code == 401 and unauthorized.headers['Access-Control-Allow-Origin'] == UI_ORIGIN

