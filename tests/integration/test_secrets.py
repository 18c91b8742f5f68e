"""Credentials (seed, "Data Security"): protected values are used, never shown, never logged, and overwritten in
the database once the batch (connector access) or the whole experiment (registry auth) has ended."""
import json
import time
import urllib.parse

from bson import ObjectId, json_util

from cc_agency import transitions
from cc_agency.broker import documents
from cc_agency.db import BATCHES, EXPERIMENTS
from cc_agency.secrets import MASK
from tests import reds
from localcluster import FileServer

USER = 'S3cret-User-x1'
PASSWORD = 'S3cret-Pass-x2'
REGISTRY_PASSWORD = 'S3cret-Registry-x3'
WRONG_PASSWORD = 'S3cret-Wrong-x4'
SECRETS = (USER, PASSWORD, REGISTRY_PASSWORD, WRONG_PASSWORD)


def dump_database(agency):
    with agency.database() as db:
        return ''.join(json_util.dumps(list(db[name].find())) for name in db.list_collection_names())


def assert_no_secret(text, where):
    for secret in SECRETS:
        assert secret not in text, '{} leaks {}'.format(where, secret)


def test_protected_values_never_leak_and_are_voided(agency, alice):
    with FileServer(auth=(USER, PASSWORD)) as private:
        private.add('/files/in.txt', b'private data ')
        auth = {'_username': USER, 'password': PASSWORD}
        good = reds.batch(private.base_url, name='in.txt', out='out.txt', access_extra={'auth': auth})
        slow = reds.batch(private.base_url, name='in.txt', out='slow.txt', access_extra={'auth': auth},
                          script="import time; time.sleep(3); open('result.txt', 'w').write('slow')")
        bad = reds.batch(private.base_url, name='in.txt', out='bad.txt',
                         access_extra={'auth': {'_username': USER, 'password': WRONG_PASSWORD}})
        red = reds.red([good, slow, bad])
        red['container']['settings']['image']['auth'] = {'username': 'registry-user', 'password': REGISTRY_PASSWORD}
        response = alice.post(agency.url + '/red', json=red, params={'disableRetry': '1'})
        assert response.status_code == 200
        experiment_id = response.json()['experimentId']

        # while batches run, the API masks every protected value but keeps the others
        time.sleep(1.5)
        running = [alice.get(agency.url + '/batches/' + b['_id']).json()
                   for b in alice.get(agency.url + '/batches', params={'experimentId': experiment_id}).json()]
        experiment = alice.get(agency.url + '/experiments/' + experiment_id)
        assert_no_secret(json.dumps(running) + experiment.text, 'the API while running')
        assert experiment.json()['container']['settings']['image']['auth']['username'] == 'registry-user'
        access = running[0]['inputs']['infile']['connector']['access']
        assert access['url'].startswith(private.base_url) and access['auth']['password'] != PASSWORD

        done = agency.wait_terminal(alice, experiment_id, 3)
        states = sorted(alice.get(agency.url + '/batches/' + b['_id']).json()['state'] for b in done)
        assert states == ['failed', 'succeeded', 'succeeded']
        assert private.uploaded('/uploads/out.txt') == b'private data ababab'  # the credentials did work

    everything = dump_database(agency)
    assert_no_secret(everything, 'the database after the experiment ended')
    assert 'registry-user' in everything and '/files/in.txt' in everything  # values that are not protected stay
    all_api = ''.join(alice.get(agency.url + path).text for path in (
        '/experiments/' + experiment_id, '/batches?experimentId=' + experiment_id, '/nodes'))
    all_api += ''.join(alice.get(agency.url + '/batches/' + b['_id']).text for b in done)
    assert_no_secret(all_api, 'the API after the end')
    failed = next(alice.get(agency.url + '/batches/' + b['_id']).json() for b in done
                  if alice.get(agency.url + '/batches/' + b['_id']).json()['state'] == 'failed')
    assert failed['history'][-1]['debugInfo']  # it says why, without the password
    assert_no_secret(agency.log('controller') + agency.log('broker'), 'the logs')


SIGNATURE = 'S1gned-Query-x5/+='


def spellings(secret):
    return [secret, urllib.parse.quote(secret, safe=''), urllib.parse.quote_plus(secret), json.dumps(secret)[1:-1]]


def test_a_protected_url_quoted_by_a_failing_connector_is_masked_everywhere(agency, alice, file_server):
    # a key whose name does not look secret: only the controller knows that `_url` was protected
    signed = '{}/files/missing.txt?sig={}&exp=1'.format(file_server.base_url, urllib.parse.quote(SIGNATURE, safe=''))
    batch = reds.batch(file_server.base_url)
    batch['inputs']['infile']['connector']['access'] = {'_url': signed, 'method': 'GET'}
    response = alice.post(agency.url + '/red', json=reds.red([batch]), params={'disableRetry': '1'})
    assert response.status_code == 200, response.text
    experiment_id = response.json()['experimentId']
    [done] = agency.wait_terminal(alice, experiment_id, 1)
    answer = alice.get(agency.url + '/batches/' + done['_id']).json()
    assert answer['state'] == 'failed'
    reason = ' '.join(answer['history'][-1]['debugInfo'])
    assert '404' in reason or 'not found' in reason.lower(), reason  # it still says why

    api = json.dumps(answer) + ''.join(alice.get(agency.url + path).text for path in (
        '/batches/{}/stdout'.format(done['_id']), '/batches/{}/stderr'.format(done['_id']),
        '/experiments/' + experiment_id, '/batches?experimentId=' + experiment_id))
    everything = {'the API': api, 'the database': dump_database(agency), 'the controller log': agency.log('controller')}
    for where, text in everything.items():
        for spelling in spellings(SIGNATURE) + spellings(signed) + ['S1gned-Query-x5']:
            assert spelling not in text, '{} leaks {}'.format(where, spelling)


def test_the_sweep_voids_registry_credentials_a_hiccup_left(mongo_db):
    """After the last batch's transition, voiding the experiment's credentials failed (say the database was away):
    the registrar's sweep finds every ended experiment that still holds them, and only those."""
    auth = {'username': 'u', 'password': REGISTRY_PASSWORD, 'identitytoken': 'S3cret-Token-x6'}
    ended, running = ObjectId(), ObjectId()
    for oid in (ended, running):
        mongo_db[EXPERIMENTS].insert_one({'_id': oid, 'registrationComplete': True,
                                          'container': {'settings': {'image': {'url': 'i', 'auth': auth}}}})
    mongo_db[BATCHES].insert_many([{'experimentId': str(ended), 'state': 'succeeded'},
                                   {'experimentId': str(ended), 'state': 'failed'},
                                   {'experimentId': str(running), 'state': 'processing'}])

    def image_auth(oid):
        return mongo_db[EXPERIMENTS].find_one({'_id': oid})['container']['settings']['image']['auth']
    assert transitions.void_ended_experiments(mongo_db) == 1
    assert image_auth(ended) == {'username': 'u', 'password': None, 'identitytoken': None}
    assert image_auth(running) == auth
    mongo_db[BATCHES].update_one({'experimentId': str(running)}, {'$set': {'state': 'cancelled'}})
    assert transitions.void_ended_experiments(mongo_db) == 1
    assert image_auth(running) == {'username': 'u', 'password': None, 'identitytoken': None}
    assert transitions.void_ended_experiments(mongo_db) == 0  # nothing left to look at
    shown = documents.experiment_json(mongo_db[EXPERIMENTS].find_one({'_id': running}))
    assert transitions.SECRETS_VOIDED not in shown  # bookkeeping, not part of the API
    # while an experiment holds them, the API masks Docker's credential keys too
    assert documents.experiment_json({'_id': ended, 'container': {'settings': {'image': {'url': 'i', 'auth': auth}}}})[
        'container']['settings']['image']['auth'] == {'username': 'u', 'password': MASK, 'identitytoken': MASK}
