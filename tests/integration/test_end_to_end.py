"""A RED experiment end to end: broker -> MongoDB -> controller -> Docker engine -> connectors -> result."""
import requests

from tests import reds


def submit(agency, session, red, **params):
    response = session.post(agency.url + '/red', json=red, params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()['experimentId']


def test_one_batch_runs_end_to_end(agency, alice, file_server):
    file_server.add('/files/e2e-in.txt', b'hello ')
    red = reds.red([reds.batch(file_server.base_url, name='e2e-in.txt', out='e2e-out.txt', word='ab', times=3)])
    experiment_id = submit(agency, alice, red)

    [batch] = agency.wait_terminal(alice, experiment_id, 1)
    batch = alice.get(agency.url + '/batches/' + batch['_id']).json()
    assert batch['state'] == 'succeeded', batch['history'][-1]
    assert file_server.uploaded('/uploads/e2e-out.txt') == b'hello ababab'
    assert [h['state'] for h in batch['history']] == ['registered', 'scheduled', 'processing', 'succeeded']
    assert batch['node'] == 'node1' and batch['attempts'] == 1
    stdout = alice.get(agency.url + '/batches/{}/stdout'.format(batch['_id']))
    assert stdout.status_code == 200 and stdout.text == 'processed 6 bytes\n'
    assert alice.get(agency.url + '/batches/{}/stderr'.format(batch['_id'])).text == 'note on stderr\n'

    experiment = alice.get(agency.url + '/experiments/' + experiment_id).json()
    assert experiment['_id'] == experiment_id and experiment['batchCount'] == 1
    listed = alice.get(agency.url + '/batches', params={'experimentId': experiment_id}).json()
    assert [b['_id'] for b in listed] == [batch['_id']]


def test_failing_command_ends_failed_with_exit_code_and_stderr(agency, alice, file_server):
    file_server.add('/files/fail-in.txt', b'x')
    script = "import sys; print('something broke badly', file=sys.stderr); sys.exit(3)"
    red = reds.red([reds.batch(file_server.base_url, name='fail-in.txt', out='fail-out.txt', script=script)])
    experiment_id = submit(agency, alice, red, disableRetry='true')

    [batch] = agency.wait_terminal(alice, experiment_id, 1)
    batch = alice.get(agency.url + '/batches/' + batch['_id']).json()
    assert batch['state'] == 'failed'
    debug_info = '\n'.join(batch['history'][-1]['debugInfo'])
    assert 'code 3' in debug_info or 'exit code 3' in debug_info or ' 3' in debug_info
    assert 'something broke badly' in debug_info
    assert batch['attempts'] == 1
    assert file_server.uploaded('/uploads/fail-out.txt') is None


def test_failed_attempts_are_retried_until_attempts_to_fail(make_agency, engine, file_server):
    agency = make_agency({'node1': {'base_url': engine.base_url, 'network': 'host'}}, attempts_to_fail=2)
    agency.create_user('bob', 'bob-pw')
    bob = agency.session('bob', 'bob-pw')
    file_server.add('/files/retry-in.txt', b'x')
    red = reds.red([reds.batch(file_server.base_url, name='retry-in.txt', script='import sys; sys.exit(1)')])
    experiment_id = submit(agency, bob, red)
    [batch] = agency.wait_terminal(bob, experiment_id, 1)
    batch = bob.get(agency.url + '/batches/' + batch['_id']).json()
    assert batch['state'] == 'failed' and batch['attempts'] == 2
    states = [h['state'] for h in batch['history']]
    assert states == ['registered', 'scheduled', 'processing', 'registered', 'scheduled', 'processing', 'failed']


def test_five_batches_all_run(agency, alice, file_server):
    batches = []
    for i in range(5):
        file_server.add('/files/five-{}.txt'.format(i), 'input {} '.format(i).encode())
        batches.append(reds.batch(file_server.base_url, name='five-{}.txt'.format(i), out='five-{}.out'.format(i),
                                  word='z', times=i))
    experiment_id = submit(agency, alice, reds.red(batches))
    done = agency.wait_terminal(alice, experiment_id, 5)
    assert sorted(b['state'] for b in done) == ['succeeded'] * 5
    for i in range(5):
        assert file_server.uploaded('/uploads/five-{}.out'.format(i)) == 'input {} '.format(i).encode() + b'z' * i
    # they ran side by side: some were processing at the same time (the first may end alone: it checks the
    # connectors for all, and the others start once its checks passed)
    full = [alice.get(agency.url + '/batches/' + b['_id']).json() for b in done]
    runs = [(next(h['time'] for h in b['history'] if h['state'] == 'processing'), b['history'][-1]['time'])
            for b in full]
    most_at_once = max(sum(1 for start, end in runs if start <= moment < end) for moment, _ in runs)
    assert most_at_once >= 2, runs


def test_unknown_image_fails_the_batch_with_a_clear_reason(agency, alice, file_server):
    # a registry on a closed loopback port: the pull fails (never any traffic beyond loopback)
    red = reds.red([reds.batch(file_server.base_url)], image='127.0.0.1:1/no/such-image:1')
    experiment_id = submit(agency, alice, red, disableRetry='1')
    [batch] = agency.wait_terminal(alice, experiment_id, 1)
    batch = alice.get(agency.url + '/batches/' + batch['_id']).json()
    assert batch['state'] == 'failed' and batch['attempts'] == 1
    assert 'no/such-image' in ' '.join(batch['history'][-1]['debugInfo'])


def _counts(agency):
    with agency.database() as db:
        return db.experiments.count_documents({}), db.batches.count_documents({})


def test_bad_input_gets_a_clear_4xx_and_writes_nothing(agency, alice, file_server):
    before = _counts(agency)
    good = reds.red([reds.batch(file_server.base_url)])
    # RED 9 makes ram optional (it then defaults, cc_agency.red.DEFAULT_RAM_MIB); beyond its bound it is refused
    too_much_ram = reds.red([reds.batch(file_server.base_url)], ram=10 ** 12)
    with_variables = reds.red([reds.batch(file_server.base_url, word='{{word}}')])
    schema_invalid = dict(good, cli=dict(good['cli'], cwlVersion='v9'))
    cases = [
        ('not json', dict(data=b'{not json', headers={'Content-Type': 'application/json'}), 'JSON'),
        ('a list', dict(json=[1, 2]), 'RED'),
        ('schema invalid', dict(json=schema_invalid), 'cwlVersion'),
        ('variables', dict(json=with_variables), 'variables'),
        ('too much ram', dict(json=too_much_ram), 'container.settings.ram'),
        ('bad flag', dict(json=good, params={'disableRetry': 'maybe'}), 'disableRetry'),
    ]
    for name, kwargs, expected in cases:
        response = alice.post(agency.url + '/red', timeout=10, **kwargs)
        assert response.status_code == 400, (name, response.status_code, response.text)
        assert response.headers['Content-Type'] == 'application/json'
        assert expected.lower() in response.json()['message'].lower(), (name, response.json())
    assert _counts(agency) == before

    assert requests.post(agency.url + '/red', json=good, timeout=10).status_code == 401
    assert requests.post(agency.url + '/red', json=good, auth=('alice', 'wrong'), timeout=10).status_code == 401
    assert alice.get(agency.url + '/batches/not-an-id').status_code == 400
    assert alice.get(agency.url + '/batches/0123456789abcdef01234567').status_code == 404
    assert _counts(agency) == before
