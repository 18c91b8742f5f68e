"""cc-agency-ui 1.1.0 against this broker (issue 14): the web UI's exact calls over HTTP, served from another origin
(listed in broker.cors_origins), with `Authorization: Bearer <access_token>` and `Content-Type: application/json`,
against a whole agency (controller, Docker engine, SecantusDB) that runs the batches it shows."""
import time

import requests

from tests import reds

UI_ORIGIN = 'http://ui.example:3000'
ACCESS_S = 4
SLEEP_SCRIPT = 'import time; time.sleep(60)'


class WebUi:
    """What cc-agency-ui does: log in once (Basic), send the access token, refresh it after a 401."""

    def __init__(self, url, username, password):
        self.url = url
        self.refreshes = 0
        self.answers = []
        response = requests.post(url + '/login', auth=(username, password), timeout=30, headers=self._headers())
        assert response.status_code == 200, response.text
        body = response.json()
        assert body['username'] == username
        self.access_token, self.refresh_token = body['access_token'], body['refresh_token']
        self.answers.append(response)

    def _headers(self, token=None):
        headers = {'Content-Type': 'application/json', 'Origin': UI_ORIGIN}
        if token:
            headers['Authorization'] = 'Bearer ' + token
        return headers

    def call(self, method, path, **params):
        response = requests.request(method, self.url + path, params=params, timeout=30,
                                    headers=self._headers(self.access_token))
        self.answers.append(response)
        if response.status_code == 401:
            refreshed = requests.post(self.url + '/refreshtoken', timeout=30, headers=self._headers(self.refresh_token))
            self.answers.append(refreshed)
            assert refreshed.status_code == 200, refreshed.text
            self.access_token = refreshed.json()['access_token']
            self.refreshes += 1
            response = requests.request(method, self.url + path, params=params, timeout=30,
                                        headers=self._headers(self.access_token))
            self.answers.append(response)
        assert response.status_code == 200, (method, path, response.status_code, response.text)
        return response


def test_cc_agency_ui_call_sequence(make_agency, engine, file_server):
    agency = make_agency({'node1': {'base_url': engine.base_url, 'network': 'host'}}, extra={
        'broker.cors_origins': [UI_ORIGIN], 'broker.auth.jwt': {'access_token_expires': ACCESS_S}})
    agency.create_user('ui-user', 'ui-pw')
    file_server.add('/files/ui-in.txt', b'from the ui ')
    red = reds.red([reds.batch(file_server.base_url, name='ui-in.txt', out='ui-out.txt'),
                    reds.batch(file_server.base_url, name='ui-in.txt', out='ui-never.txt', script=SLEEP_SCRIPT)])
    posted = requests.post(agency.url + '/red', json=red, auth=('ui-user', 'ui-pw'), timeout=30)
    assert posted.status_code == 200, posted.text
    experiment_id = posted.json()['experimentId']

    ui = WebUi(agency.url, 'ui-user', 'ui-pw')
    logged_in_at = time.monotonic()
    # the UI polls the experiment's batches until the first is done and the second runs; meanwhile (or right
    # after) its access token expires and it refreshes it
    deadline = time.monotonic() + 90
    while True:
        batches = ui.call('GET', '/batches', experimentId=experiment_id).json()
        states = {b['batchesListIndex']: b['state'] for b in batches}
        if states.get(0) == 'succeeded' and states.get(1) == 'processing' \
                and time.monotonic() - logged_in_at > ACCESS_S + 0.5:
            break
        assert time.monotonic() < deadline, (states, agency.log('controller')[-3000:])
        time.sleep(0.3)
    assert ui.refreshes >= 1, 'the access token should have expired and been refreshed'

    experiments = ui.call('GET', '/experiments').json()
    assert [e['_id'] for e in experiments] == [experiment_id]
    assert ui.call('GET', '/experiments/' + experiment_id).json()['_id'] == experiment_id
    assert {b['_id'] for b in ui.call('GET', '/batches').json()} == {b['_id'] for b in batches}
    by_index = {b['batchesListIndex']: b for b in ui.call('GET', '/batches', experimentId=experiment_id).json()}
    done, running = by_index[0], by_index[1]
    assert ui.call('GET', '/batches/' + done['_id']).json()['state'] == 'succeeded'
    assert ui.call('GET', '/batches/{}/stdout'.format(done['_id'])).text == 'processed 12 bytes\n'
    assert ui.call('GET', '/batches/{}/stderr'.format(done['_id'])).text == 'note on stderr\n'

    [node] = ui.call('GET', '/nodes').json()
    assert node['nodeName'] == 'node1' and node['state'] == 'online'
    assert isinstance(node['ram'], int) and node['ram'] > 0 and isinstance(node['cpus'], int) and node['cpus'] > 0
    assert node['gpus'] == []
    assert [(b['batchId'], b['ram']) for b in node['currentBatches']] == [(running['_id'], 256)]

    cancelled = ui.call('DELETE', '/batches/' + running['_id']).json()
    assert cancelled['state'] == 'cancelled' and cancelled['batchesListIndex'] == 1
    deadline = time.monotonic() + 30
    while ui.call('GET', '/nodes').json()[0]['currentBatches']:
        assert time.monotonic() < deadline, 'the cancelled batch still holds its node'
        time.sleep(0.3)

    # every answer, errors and the token refresh included, was one the browser lets the UI's origin read
    assert all(answer.headers.get('Access-Control-Allow-Origin') == UI_ORIGIN for answer in ui.answers)
    assert {answer.status_code for answer in ui.answers} <= {200, 401}
