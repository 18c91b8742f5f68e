"""GPU detection's parser on the real outputs of nvidia-smi on an H100 machine (driver 580; tests/fixtures/
nvidia-smi-h100, copied from the shared fixtures): every format gives the same GPU, and 9.x's blacklist of indices
takes GPUs out."""
from pathlib import Path

import pytest

from cc_agency.controller.gpu_detection import (DETECTION_COMMAND, GpuOutputError, parse_nvidia_smi, parse_query_csv,
                                                without_blacklisted)

FIXTURES = Path(__file__).resolve().parents[1] / 'fixtures' / 'nvidia-smi-h100'
H100 = {'id': 0, 'vram': 81559, 'uuid': 'GPU-8b39f363-ef63-4d98-7a3a-cd961348a5c5', 'name': 'NVIDIA H100 80GB HBM3'}


def fixture(name):
    return (FIXTURES / name).read_text()


@pytest.mark.parametrize('name', ['query-gpu.csv', 'query-gpu-header.csv', 'nvidia-smi-q.xml'])
def test_each_format_gives_the_h100_with_its_memory(name):
    assert parse_nvidia_smi(fixture(name)) == [H100]


def test_the_plain_table_gives_index_name_and_memory():
    assert parse_nvidia_smi(fixture('nvidia-smi.txt')) == [{'id': 0, 'vram': 81559, 'name': 'NVIDIA H100 80GB HBM3'}]


def test_the_list_is_refused_because_it_has_no_memory():
    with pytest.raises(GpuOutputError, match='without their memory'):
        parse_nvidia_smi(fixture('list.txt'))


def test_the_detection_command_asks_for_the_columns_the_fixture_starts_with():
    """The fixture's query has memory.used and memory.free after the columns the detection asks for."""
    assert DETECTION_COMMAND == ['nvidia-smi', '--query-gpu=index,uuid,name,memory.total',
                                 '--format=csv,noheader,nounits']
    four_columns = '\n'.join(', '.join(line.split(', ')[:4]) for line in fixture('query-gpu.csv').splitlines())
    assert parse_query_csv(four_columns) == [H100]


def test_several_gpus_and_the_blacklist_of_indices():
    line = fixture('query-gpu.csv').strip()
    text = '\n'.join(line.replace('0, GPU-8b', '{}, GPU-8b'.format(index), 1) for index in range(4)) + '\n'
    gpus = parse_nvidia_smi(text)
    assert [gpu['id'] for gpu in gpus] == [0, 1, 2, 3] and {gpu['vram'] for gpu in gpus} == {81559}
    assert [gpu['id'] for gpu in without_blacklisted(gpus, [1, 3])] == [0, 2]
    assert without_blacklisted(gpus, None) == gpus


def test_a_node_without_gpus_and_broken_outputs():
    assert parse_nvidia_smi('') == [] and parse_nvidia_smi('No devices were found\n') == []
    for text, reason in (('0, GPU-x, H100\n', '3 values, 4 expected'), ('x, GPU-x, H100, 80\n', 'not a number'),
                         ('0, GPU-x, H100, lots\n', 'not a number of MiB'), ('<nvidia_smi_log><gpu>', 'invalid XML'),
                         ('bash: nvidia-smi: not found\n', '1 values, 4 expected')):
        with pytest.raises(GpuOutputError, match=reason):
            parse_nvidia_smi(text)
