"""RED checks of the broker (red.py): what is accepted, what is refused and with which message."""
import copy

import pytest

from cc_agency import red as red_module
from cc_agency.red import RedError, gpu_vram_requirements, parse_red
from tests import reds, reds9

URL = 'http://127.0.0.1:1'


def good():
    return reds.red([reds.batch(URL), reds.batch(URL, name='b.txt')])


def test_valid_red_splits_into_batches_and_requirements():
    experiment, batches = parse_red(good())
    assert len(batches) == 2
    assert batches[1]['inputs']['infile']['connector']['access']['url'].endswith('/b.txt')
    assert experiment['requirements'] == {'ramMiB': 256, 'gpuVramMiB': []}
    assert 'batches' not in experiment


def test_single_batch_form():
    red = good()
    single = red.pop('batches')[0]
    red.update(single)
    experiment, batches = parse_red(red)
    assert len(batches) == 1 and batches[0]['inputs']['word'] == 'ab'


def test_execution_access_is_never_kept():
    red = good()
    red['execution'] = {'engine': 'ccagency', 'settings': {'access': {'url': 'x', 'auth': {'password': 'pw'}},
                                                            'batchConcurrencyLimit': 2}}
    experiment, _ = parse_red(red)
    assert experiment['execution']['settings'] == {'batchConcurrencyLimit': 2}


@pytest.mark.parametrize('mutate, message', [
    (lambda r: r['container']['settings'].update(ram=100), 'container.settings.ram'),
    (lambda r: r['container'].update(engine='podman'), 'container.engine'),
    (lambda r: r.update(redVersion='8'), 'RED'),
    (lambda r: r['batches'][0]['inputs'].update(word='{{word}}'), 'variables'),
    (lambda r: r['batches'][0]['inputs'].update(times='three'), 'times'),
    (lambda r: r['batches'][0]['inputs']['infile']['connector']['access'].update(_token=5), 'string value'),
    (lambda r: r.update(batches=[]), 'batch'),
    (lambda r: r['container']['settings'].update(gpus={'vendor': 'nvidia', 'count': 1, 'devices': []}), 'gpus'),
    (lambda r: r['execution'] if r.update(execution={'engine': 'other', 'settings': {}}) else None, 'execution'),
    (lambda r: r.update(execution={'engine': 'ccfaice', 'settings': {'access': {}}}), 'execution.settings'),
    (lambda r: r['container']['settings'].update(version=9), 'container.settings.version'),
    (lambda r: r['container']['settings']['image'].update(source={}), 'container.settings.image.source'),
])
def test_invalid_reds_are_refused_with_a_reason(mutate, message):
    red = good()
    mutate(red)
    with pytest.raises(RedError) as error:
        parse_red(red)
    assert message.lower() in str(error.value).lower()


def test_not_an_object():
    with pytest.raises(RedError):
        parse_red(['not', 'a', 'red'])


def test_gpu_requirements():
    assert gpu_vram_requirements(None) == []
    assert gpu_vram_requirements({'vendor': 'nvidia', 'count': 2}) == [0, 0]
    assert gpu_vram_requirements({'vendor': 'nvidia', 'devices': [{'vramMin': 512}, {}]}) == [512, 0]


# ------------------------------------------------------------------------------------ the RED 9 ecosystem's REDs

@pytest.mark.parametrize('name', sorted(reds9.DOC_EXAMPLES))
def test_documentation_examples_are_accepted(name):
    red = copy.deepcopy(reds9.DOC_EXAMPLES[name])
    assert reds9.published_schema_problems(red) == []   # the corpus is what the ecosystem accepts
    experiment, batches = parse_red(red)
    assert batches and experiment['requirements']['ramMiB'] == 256


@pytest.mark.parametrize('name', sorted(reds9.OPTIONAL_FIELDS))
def test_each_optional_field_of_the_published_schemas_is_accepted_and_kept(name):
    red, stored, expected = reds9.optional_field_reds()[name]
    assert reds9.published_schema_problems(red) == []
    experiment, batches = parse_red(red)
    assert stored(experiment, batches) == expected


def test_the_corpus_uses_every_field_the_published_schemas_define():
    used = set()
    for red in list(reds9.DOC_EXAMPLES.values()) + [red for red, _, _ in reds9.OPTIONAL_FIELDS.values()]:
        reds9.keys_used(red, used)
    assert len(reds9.schema_property_names()) > 40
    assert reds9.schema_property_names() - used == set()


def test_a_red_without_ram_runs_with_the_default_and_shows_it():
    red = good()
    red['container']['settings'].pop('ram')
    experiment, _ = parse_red(red)
    assert experiment['container']['settings']['ram'] == red_module.DEFAULT_RAM_MIB == 1024
    assert experiment['requirements']['ramMiB'] == 1024
    assert 'ram' not in red['container']['settings']   # the client's RED is not changed


def test_cloud_sections_red_val_knows_are_refused_only_when_enabled():
    red = good()
    red['batches'][0]['cloud'] = {'enable': False, 'mountDir': 'cloud'}
    parse_red(red)
    red['batches'][0]['cloud']['enable'] = True
    with pytest.raises(RedError, match='cloud: cc-cloud is not available'):
        parse_red(red)


# ------------------------------------------------------------------------------------------------------ bounds

def _execution(settings):
    return lambda r: r.update(execution={'engine': 'ccagency', 'settings': settings})


def _gpus(gpus):
    return lambda r: r['container']['settings'].update(gpus=dict(gpus, vendor='nvidia'))


def _infile(**fields):
    return lambda r: r['batches'][0]['inputs']['infile'].update(fields)


@pytest.mark.parametrize('mutate, field', [
    (lambda r: r['container']['settings'].update(ram=16 * 1024 * 1024 + 1), 'container.settings.ram'),
    (lambda r: r['container']['settings'].update(ram=2 ** 70), 'container.settings.ram'),
    (_gpus({'count': 65}), 'container.settings.gpus.count'),
    (_gpus({'count': -1}), 'container.settings.gpus.count'),
    (_gpus({'devices': [{}] * 65}), 'container.settings.gpus.devices'),
    (_gpus({'devices': [{'vramMin': 1024 * 1024 + 1}]}), 'container.settings.gpus.devices.0.vramMin'),
    (_gpus({'devices': [{'vramMin': -5}]}), 'container.settings.gpus.devices.0.vramMin'),
    (_execution({'batchConcurrencyLimit': 0}), 'execution.settings.batchConcurrencyLimit'),
    (_execution({'batchConcurrencyLimit': 10 ** 7}), 'execution.settings.batchConcurrencyLimit'),
    (_execution({'retryIfFailed': 3}), 'execution.settings.retryIfFailed'),
    (_infile(size=-1), 'batches[0].inputs.infile.size'),
    (_infile(size=2 ** 50 + 1), 'batches[0].inputs.infile.size'),
    (lambda r: r['batches'][0]['outputs']['result'].update(size=2 ** 60), 'batches[0].outputs.result.size'),
    (lambda r: (r['cli']['inputs'].update(d={'type': 'Directory?', 'inputBinding': {'prefix': '-d'}}),
                r['batches'][1]['inputs'].update(d={'class': 'Directory', 'connector': {'command': 'c', 'access': {}},
                                                    'listing': [{'class': 'Directory', 'basename': 's', 'listing': [
                                                        {'class': 'File', 'basename': 'f', 'size': -2}]}]})),
     'batches[1].inputs.d.listing[0].listing[0].size'),
    (lambda r: r['cli']['inputs']['word']['inputBinding'].update(position=2 ** 31),
     'cli.inputs.word.inputBinding.position'),
    (lambda r: r['batches'][1]['inputs'].update(word='x' * (1024 * 1024 + 1)), 'batches[1].inputs.word'),
    (lambda r: r['container']['settings'].update(version='9' * (1024 * 1024 + 1)), 'container.settings.version'),
    (lambda r: r['batches'][0]['inputs']['infile']['connector']['access'].update({'k' * 257: 'v'}),
     'batches[0].inputs.infile.connector.access'),
])
def test_every_number_and_text_is_bounded_and_the_400_names_the_field(mutate, field):
    red = good()
    mutate(red)
    with pytest.raises(RedError) as error:
        parse_red(red)
    message = str(error.value)
    assert message.startswith(field + ':'), message
    assert len(message) < 400   # never the whole offending value


def test_values_at_the_bounds_are_accepted():
    red = good()
    red['container']['settings'].update(ram=red_module.MAX_RAM_MIB,
                                        gpus={'vendor': 'nvidia', 'devices': [{'vramMin': red_module.MAX_VRAM_MIB}]
                                              * red_module.MAX_GPUS})
    red['execution'] = {'engine': 'ccagency', 'settings': {'batchConcurrencyLimit': 10 ** 6}}
    red['batches'][0]['inputs']['infile']['size'] = 2 ** 50
    red['batches'][1]['inputs']['word'] = 'x' * (1024 * 1024)
    red['cli']['inputs']['word']['inputBinding']['position'] = 2 ** 31 - 1
    experiment, _ = parse_red(red)
    assert experiment['requirements']['gpuVramMiB'] == [1024 * 1024] * 64
