"""RED checks of the broker (red.py): what is accepted, what is refused and with which message."""
import pytest

from cc_agency.red import RedError, gpu_vram_requirements, parse_red
from tests import reds

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
    (lambda r: r['container']['settings'].pop('ram'), "'ram' is a required property"),
    (lambda r: r['container']['settings'].update(ram=100), 'container.settings.ram'),
    (lambda r: r['container'].update(engine='podman'), 'container.engine'),
    (lambda r: r.update(redVersion='8'), 'RED'),
    (lambda r: r['batches'][0]['inputs'].update(word='{{word}}'), 'variables'),
    (lambda r: r['batches'][0]['inputs'].update(times='three'), 'times'),
    (lambda r: r['batches'][0]['inputs']['infile']['connector']['access'].update(_token=5), 'string value'),
    (lambda r: r.update(batches=[]), 'batch'),
    (lambda r: r['container']['settings'].update(gpus={'vendor': 'nvidia', 'count': 1, 'devices': []}), 'gpus'),
    (lambda r: r['execution'] if r.update(execution={'engine': 'other', 'settings': {}}) else None, 'execution'),
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
