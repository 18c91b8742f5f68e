"""Credentials (seed, "Data Security"): protected values are used, never shown, never logged, and overwritten in
the database once the batch (connector access) or the whole experiment (registry auth) has ended."""
import json
import time

from bson import json_util

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
