"""GPU detection on real engines. There is no GPU here, so the node that "has" GPUs is a real dockerd whose
daemon.json registers a runtime named `nvidia` (its binary is plain runc) and the detection image is a real image
whose `nvidia-smi` is a shell script printing the real nvidia-smi output of an H100 machine (tests/fixtures): a
fake binary in a real container on a real engine, so everything between the controller and nvidia-smi's output
(runtime check, image, container, its output, parsing, blacklist, placement, the batch's devices) is what runs
in production; only what the driver would print is canned. The other node is a plain engine (no nvidia runtime):
it has no GPUs, says so in one log line, and runs batches."""
import io
import logging
import tarfile
from pathlib import Path

import pytest

from cc_agency.controller.engines import GPU_DETECTION_LABEL, Engine
from localcluster import DockerEngine, load_images_into
from localcluster.images import TEST_IMAGE
from tests.integration.cluster import batches_of, command_red, submit, user_session, wait_nodes_online

FIXTURE = Path(__file__).resolve().parents[1] / 'fixtures' / 'nvidia-smi-h100' / 'query-gpu.csv'
FAKE_IMAGE = 'local/fake-nvidia-smi:1'
# prints the H100 line as GPU 0 and a copy of it as GPU 1, only when asked what the detection asks
FAKE_NVIDIA_SMI = b"""#!/bin/sh
[ "$*" = "--query-gpu=index,uuid,name,memory.total --format=csv,noheader,nounits" ] || exit 9
cat /fixture/query-gpu.csv
sed -e 's/^0,/1,/' -e 's/GPU-8b/GPU-9c/' /fixture/query-gpu.csv
"""
PRINT_DEVICES = "import os; print(os.environ.get('NVIDIA_VISIBLE_DEVICES'))"


def _tar(files):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w') as archive:
        for path, (data, mode) in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), mode
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture(scope='module')
def nvidia_engine():
    """A real engine with a runtime named nvidia (runc) and the fake nvidia-smi image (committed from a container)."""
    node = DockerEngine(name='gpu1', daemon_config={'runtimes': {'nvidia': {'path': 'runc'}}})
    try:
        node.start()
        load_images_into([node], refs=(TEST_IMAGE,))
        client = node.client()
        try:
            container = client.api.create_container(TEST_IMAGE, command=['true'])
            client.api.put_archive(container['Id'], '/', _tar({
                'usr/local/bin/nvidia-smi': (FAKE_NVIDIA_SMI, 0o755),
                'fixture/query-gpu.csv': (FIXTURE.read_bytes(), 0o644)}))
            repository, tag = FAKE_IMAGE.split(':')
            client.api.commit(container['Id'], repository=repository, tag=tag)
            client.api.remove_container(container['Id'])
        finally:
            client.close()
        yield node
    finally:
        node.stop(remove=True)


def test_detection_finds_the_gpus_less_the_blacklist(nvidia_engine, caplog):
    node = Engine('gpu1', {'base_url': nvidia_engine.base_url,
                           'hardware': {'gpu_detection_image': FAKE_IMAGE, 'gpu_blacklist': [0]}}, 10)
    with caplog.at_level(logging.INFO, logger='cc_agency.controller.engines'):
        assert node.node_gpus() == [{'id': 1, 'vram': 81559, 'uuid': 'GPU-9c39f363-ef63-4d98-7a3a-cd961348a5c5',
                                     'name': 'NVIDIA H100 80GB HBM3'}]
    assert 'node gpu1: detected 2 GPU(s), 1 blacklisted: 0 (NVIDIA H100 80GB HBM3, 81559 MiB), 1 (' in caplog.text
    client = nvidia_engine.client()
    try:  # the detection container is gone
        assert client.api.containers(all=True, filters={'label': GPU_DETECTION_LABEL}) == []
    finally:
        client.close()
    # the static list wins over detection
    static = Engine('gpu1', {'base_url': nvidia_engine.base_url, 'hardware': {'gpus': [{'id': 7, 'vram': 5}]}}, 10)
    assert static.node_gpus() == [{'id': 7, 'vram': 5}]


def test_a_failing_nvidia_smi_gives_no_gpus_with_the_reason(nvidia_engine, caplog):
    node = Engine('gpu1', {'base_url': nvidia_engine.base_url, 'hardware': {'gpu_detection_image': TEST_IMAGE}}, 10)
    with caplog.at_level(logging.INFO, logger='cc_agency.controller.engines'):
        assert node.node_gpus() == []
    assert 'node gpu1: no GPUs detected: nvidia-smi in image {}:'.format(TEST_IMAGE) in caplog.text
    assert 'executable file not found' in caplog.text  # the test image has no nvidia-smi


def test_engine_without_nvidia_runtime_has_no_gpus(engine, caplog):
    node = Engine('plain', {'base_url': engine.base_url}, 10)
    with caplog.at_level(logging.INFO, logger='cc_agency.controller.engines'):
        assert node.node_gpus() == []
    assert [r.getMessage() for r in caplog.records] == [
        'node plain: no GPUs detected: its engine has no "nvidia" runtime (install the NVIDIA container toolkit and '
        'run `nvidia-ctk runtime configure`, or list the GPUs in hardware.gpus)']


def test_detected_gpus_are_placed_and_reach_the_batch(make_agency, nvidia_engine, engine):
    agency = make_agency({
        'gpu1': {'base_url': nvidia_engine.base_url, 'network': 'none',
                 'hardware': {'gpu_detection_image': FAKE_IMAGE, 'gpu_blacklist': [1], 'gpu_access': 'environment'}},
        'plain': {'base_url': engine.base_url, 'network': 'none'},
    })
    alice = user_session(agency)
    nodes = wait_nodes_online(agency, alice, ['gpu1', 'plain'])
    assert [gpu['id'] for gpu in nodes['gpu1']['gpus']] == [0] and nodes['gpu1']['gpus'][0]['vram'] == 81559
    assert nodes['plain']['gpus'] == []
    with_gpu = submit(agency, alice, command_red([PRINT_DEVICES] * 2, gpus={'vendor': 'nvidia', 'count': 1}))
    plain = submit(agency, alice, command_red([PRINT_DEVICES]))
    for batch in batches_of(agency, alice, with_gpu, 2) + batches_of(agency, alice, plain, 1):
        assert batch['state'] == 'succeeded', batch['history'][-1]
        expected = 'void' if batch['usedGPUs'] is None else '0'
        assert alice.get('{}/batches/{}/stdout'.format(agency.url, batch['_id'])).text.strip() == expected
        assert batch['node'] == ('gpu1' if batch['usedGPUs'] else 'plain')
    too_many = submit(agency, alice, command_red(['pass'], gpus={'vendor': 'nvidia', 'count': 2}))
    [batch] = batches_of(agency, alice, too_many, 1)
    assert batch['state'] == 'failed' and 'the most GPUs of a node: 1' in batch['history'][-1]['debugInfo'][0]
    log = agency.log('controller')
    assert log.count('node plain: no GPUs detected') == 1
    assert log.count('node gpu1: detected 2 GPU(s), 1 blacklisted') == 1
