"""RED 9 as today's ecosystem writes it, through the real broker (and once through the whole agency).

- every RED of the corpus (tests/reds9: the documentation's examples, one RED per optional field of the published
  schemas) is registered by POST /red, and the experiment the API shows keeps what the RED said;
- a number beyond its bound is a 400 whose JSON message names the field;
- a RED that carries optional fields the agency does not act on (engine version, image source, doc texts, a file's
  dirname, size and checksum, no `ram`) runs to success: the controller stores them and its batch run ignores them.
"""
import copy
import hashlib

import pytest

from tests import reds9
from tests.integration.api_support import broker  # noqa: F401 (fixture)

CORPUS = dict(('doc:' + name, red) for name, red in reds9.DOC_EXAMPLES.items())
CORPUS.update(('field:' + name, red) for name, (red, _, _) in reds9.OPTIONAL_FIELDS.items())


@pytest.fixture(scope='module')
def researcher(broker):  # noqa: F811 (fixture)
    return broker.user_session('red9')


def post(broker, session, red):  # noqa: F811 (fixture)
    return session.post(broker.url + '/red', json=red, timeout=60)


def test_every_red_of_the_corpus_is_registered(broker, researcher):  # noqa: F811 (fixture)
    refused = {}
    for name, red in sorted(CORPUS.items()):
        response = post(broker, researcher, copy.deepcopy(red))
        if response.status_code != 200:
            refused[name] = response.text
    assert refused == {}
    assert len(CORPUS) >= 50


def test_the_experiment_keeps_the_optional_fields(broker, researcher):  # noqa: F811 (fixture)
    red, _, _ = reds9.optional_field_reds()['container-image-source']
    red['container']['settings'].update(version='20.10')
    red['container']['settings'].pop('ram')
    red['doc'] = 'an experiment'
    red['cli']['doc'] = 'copies a file'
    red['execution'] = {'engine': 'ccagency', 'settings': {'batchConcurrencyLimit': 8, 'access': {
        'url': 'https://example.com/cc', 'auth': {'username': 'me', 'password': 'my-login'}}}}
    response = post(broker, researcher, red)
    assert response.status_code == 200, response.text
    experiment = researcher.get(broker.url + '/experiments/' + response.json()['experimentId'], timeout=10).json()
    assert experiment['container']['settings'] == {'image': {'url': reds9.IMAGE, 'source': {
        'url': 'https://git.example/x'}}, 'version': '20.10', 'ram': 1024}
    assert experiment['doc'] == 'an experiment' and experiment['cli']['doc'] == 'copies a file'
    assert experiment['execution']['settings'] == {'batchConcurrencyLimit': 8}   # the login is never stored
    assert 'my-login' not in response.text + str(experiment)


@pytest.mark.parametrize('change, field', [
    (lambda r: r['container']['settings'].update(gpus={'vendor': 'nvidia', 'count': 1000}),
     'container.settings.gpus.count'),
    (lambda r: r['container']['settings'].update(ram=10 ** 12), 'container.settings.ram'),
    (lambda r: r.update(execution={'engine': 'ccagency', 'settings': {'batchConcurrencyLimit': 10 ** 9}}),
     'execution.settings.batchConcurrencyLimit'),
    (lambda r: r['batches'][0]['inputs']['infile'].update(size=-1), 'batches[0].inputs.infile.size'),
    (lambda r: r['container']['settings']['image'].update(source={'url': 'x' * (1024 * 1024 + 1)}),
     'container.settings.image.source.url'),
])
def test_a_value_beyond_its_bound_is_a_400_naming_the_field(broker, researcher, change, field):  # noqa: F811
    red = reds9.base()
    change(red)
    response = post(broker, researcher, red)
    assert response.status_code == 400, response.text
    assert response.headers['Content-Type'].startswith('application/json')
    assert response.json()['message'].startswith('invalid RED: {}:'.format(field)), response.json()


def test_optional_fields_run_to_success_on_the_agency(agency, alice, file_server):
    content = b'optional fields\n'
    file_server.add('/files/red9-in.txt', content)
    red = reds9.base(file_server.base_url)
    red['batches'][0]['inputs']['infile'] = {
        'class': 'File', 'basename': 'data.txt', 'dirname': 'data', 'size': len(content),
        'checksum': 'sha1$' + hashlib.sha1(content).hexdigest(), 'doc': 'the input',
        'connector': {'command': 'red-connector-http', 'doc': 'over HTTP', 'mount': False,
                      'access': {'url': file_server.base_url + '/files/red9-in.txt'}}}
    red['batches'][0]['outputs']['result'].update(doc='the copy')
    red['batches'][0]['outputs']['result']['connector']['access']['url'] = file_server.base_url + '/uploads/red9.txt'
    red['batches'][0]['doc'] = 'the only batch'
    red['cli']['doc'] = 'copies its input'
    red['cli']['inputs']['infile']['doc'] = 'a file'
    red['cli']['outputs']['result']['doc'] = 'the copy'
    red['container']['doc'] = 'docker'
    red['container']['settings'] = {'version': '20.10', 'image': {'url': reds9.IMAGE, 'source': {
        'url': 'https://git.example/cc-test'}}}   # and no ram: the default
    red['execution'] = {'engine': 'ccagency', 'doc': 'here', 'settings': {'batchConcurrencyLimit': 2}}
    red['doc'] = 'RED 9 optional fields'
    assert reds9.published_schema_problems(red) == []

    response = alice.post(agency.url + '/red', json=red, timeout=30)
    assert response.status_code == 200, response.text
    [batch] = agency.wait_terminal(alice, response.json()['experimentId'], 1, timeout=90)
    assert batch['state'] == 'succeeded', batch['history'][-1]
    assert file_server.uploaded('/uploads/red9.txt') == content
    nodes = alice.get(agency.url + '/nodes', timeout=10).json()
    assert nodes and all(n['state'] == 'online' for n in nodes)
