"""GPU accounting with nodes that declare GPUs in the configuration (there is no real GPU here): the chosen device ids
reach the container, no id is given to two running batches, VRAM is matched, impossible requests fail at once."""
import docker.errors
import pytest

from cc_agency.controller.engines import Engine
from tests import reds
from tests.integration.cluster import (EngineSampler, batches_of, command_red, nodes_of, submit, user_session,
                                       wait_nodes_online)

PRINT_DEVICES = "import os, time; print(os.environ.get('NVIDIA_VISIBLE_DEVICES')); time.sleep({})"
GPU_NODES = {
    'node1': {'hardware': {'gpus': [{'id': 0, 'vram': 4096}, {'id': 1, 'vram': 8192}], 'gpu_access': 'environment'}},
    'node2': {'hardware': {'gpus': [{'id': 'GPU-b0', 'vram': 16384}], 'gpu_access': 'environment'}},
}


def test_gpu_batches_get_their_own_devices(make_agency, engines3):
    agency = make_agency(nodes_of(engines3, **GPU_NODES), strategy='binpack')
    alice = user_session(agency)
    wait_nodes_online(agency, alice, [engine.name for engine in engines3])
    with EngineSampler(engines3) as sampler:
        any_gpu = submit(agency, alice, command_red([PRINT_DEVICES.format(1)] * 5,
                                                    gpus={'vendor': 'nvidia', 'count': 1}))
        large = submit(agency, alice, command_red([PRINT_DEVICES.format(0.5)] * 2,
                                                  gpus={'vendor': 'nvidia', 'devices': [{'vramMin': 10000}]}))
        plain = submit(agency, alice, command_red([PRINT_DEVICES.format(0.5)] * 2))
        any_gpu_batches = batches_of(agency, alice, any_gpu, 5)
        large_batches = batches_of(agency, alice, large, 2)
        plain_batches = batches_of(agency, alice, plain, 2)
    for batch in any_gpu_batches + large_batches + plain_batches:
        assert batch['state'] == 'succeeded', batch['history'][-1]
        stdout = alice.get('{}/batches/{}/stdout'.format(agency.url, batch['_id'])).text.strip()
        expected = ','.join(str(i) for i in batch['usedGPUs']) if batch['usedGPUs'] else 'void'
        assert stdout == expected, (stdout, batch['usedGPUs'])
        # the engine's own view of the container agrees
        [container] = [c for c in sampler.seen.values() if c['batchId'] == batch['_id']]
        assert container['gpus'] == expected and container['engine'] == batch['node']
        assert container['deviceRequests'] in (None, [])  # gpu_access: environment
    assert all(len(b['usedGPUs']) == 1 for b in any_gpu_batches)
    assert {(b['node'], str(b['usedGPUs'][0])) for b in any_gpu_batches} <= {('node1', '0'), ('node1', '1'),
                                                                             ('node2', 'GPU-b0')}
    assert all(b['node'] == 'node2' and b['usedGPUs'] == ['GPU-b0'] for b in large_batches)
    # binpack would put batches without GPUs on the fullest node, but GPU nodes are only a fallback
    assert all(b['node'] == 'node3' and b['usedGPUs'] is None for b in plain_batches)
    for devices in sampler.gpu_sets:
        assert len(devices) == len(set(devices)), 'a GPU was given to two running batches: {}'.format(devices)
    assert max(len(devices) for devices in sampler.gpu_sets) == 2, 'node1 should have run two GPU batches at once'


def test_impossible_gpu_requests_fail_at_once(make_agency, engines3):
    agency = make_agency(nodes_of(engines3, **GPU_NODES))
    alice = user_session(agency)
    too_much_vram = submit(agency, alice, command_red(['pass'], gpus={'vendor': 'nvidia',
                                                                      'devices': [{'vramMin': 32000}]}))
    too_many = submit(agency, alice, command_red(['pass'], gpus={'vendor': 'nvidia', 'count': 3}))
    for experiment_id, needs in ((too_much_vram, '1 GPU(s) with at least 32000 MiB VRAM on one node with 256 MiB '
                                                 'RAM, but no node has them (the largest GPU has 16384 MiB VRAM)'),
                                 (too_many, '3 GPU(s) on one node with 256 MiB RAM, but no node has them (the most '
                                            'GPUs of a node: 2)')):
        [batch] = batches_of(agency, alice, experiment_id, 1)
        assert batch['state'] == 'failed' and batch['attempts'] == 0
        assert 'no node can ever run this batch: needs {}'.format(needs) in batch['history'][-1]['debugInfo'][0]


def test_device_requests_carry_exactly_the_chosen_ids(engine, engine_client):
    """gpu_access: device-request (the default): an NVIDIA device request with the ids, and the same ids in
    NVIDIA_VISIBLE_DEVICES; this engine has no NVIDIA toolkit, so only creating works, starting fails."""
    node = Engine('gpu-node', {'base_url': engine.base_url, 'hardware': {'gpus': [{'id': 1, 'vram': 1}]}}, 10)
    with_gpus = node.create_container('cca-gpu-test', reds.TEST_IMAGE, ['true'], {'cca-test': 'gpu'}, 256,
                                      network='none', gpu_ids=('1', 'GPU-3'))
    without = node.create_container('cca-nogpu-test', reds.TEST_IMAGE, ['true'], {'cca-test': 'gpu'}, 256,
                                     network='none')
    try:
        info = engine_client.api.inspect_container(with_gpus)
        [request] = info['HostConfig']['DeviceRequests']
        assert request['Driver'] == 'nvidia' and request['DeviceIDs'] == ['1', 'GPU-3']
        assert request['Capabilities'] == [['gpu']]
        assert 'NVIDIA_VISIBLE_DEVICES=1,GPU-3' in info['Config']['Env']
        with pytest.raises(docker.errors.APIError):
            node.start(with_gpus)
        info = engine_client.api.inspect_container(without)
        assert not info['HostConfig'].get('DeviceRequests')
        assert 'NVIDIA_VISIBLE_DEVICES=void' in info['Config']['Env']
    finally:
        node.remove(with_gpus)
        node.remove(without)
