"""Pure rules of the engine adapter for nodes shared by users who do not trust each other (issue 12): which images
need the registry's yes per experiment, how much of a container's log is read, what an operator is warned of."""
import io

from cc_agency.controller.engines import (credentials_key, frames_tail, gpu_warnings, needs_registry_check,
                                          security_warnings)


def frame(number, payload):
    return bytes([number, 0, 0, 0]) + len(payload).to_bytes(4, 'big') + payload


def test_log_streams_are_split_by_frame():
    frames = frame(1, b'out') + frame(2, b'err\n') + frame(1, b'!\n')
    assert frames_tail(io.BytesIO(frames), 1, 100) == (b'out!\n', False)
    assert frames_tail(io.BytesIO(frames), 2, 100) == (b'err\n', False)
    assert frames_tail(io.BytesIO(b''), 1, 100) == (b'', False)


def test_only_the_tail_of_a_huge_log_is_kept():
    frames = b''.join(frame(1, bytes([65 + i % 26]) * 1000) for i in range(500)) + frame(1, b'{"state": "x"}\n')
    tail, cut = frames_tail(io.BytesIO(frames), 1, 4096, chunk_bytes=100)
    assert cut and len(tail) == 4096 and tail.endswith(b'{"state": "x"}\n')
    assert tail == (b''.join(bytes([65 + i % 26]) * 1000 for i in range(500)) + b'{"state": "x"}\n')[-4096:]


def test_a_registry_image_needs_the_registry_for_each_experiment_a_local_one_does_not():
    pulled = {'RepoDigests': ['127.0.0.1:5000/private/img@sha256:' + 'a' * 64], 'RepoTags': ['127.0.0.1:5000/private/img:1']}
    loaded = {'RepoDigests': [], 'RepoTags': ['local/img:1']}
    assert needs_registry_check('127.0.0.1:5000/private/img:1', pulled)
    assert needs_registry_check('127.0.0.1:5000/private/img@sha256:' + 'a' * 64, pulled)
    assert needs_registry_check('sha256:' + 'b' * 64, pulled)  # named by ID: still from a registry
    assert not needs_registry_check('local/img:1', loaded)
    assert not needs_registry_check('sha256:' + 'b' * 64, loaded)
    # the operator's local tag of an image it also pushed somewhere: local under that name
    assert not needs_registry_check('local/img:1', dict(pulled, RepoTags=['local/img:1']))
    # Docker Hub spellings of one repository are one repository
    assert needs_registry_check('docker.io/library/busybox:1', {'RepoDigests': ['busybox@sha256:' + 'c' * 64]})


def test_credentials_are_cached_by_digest_only():
    key = credentials_key({'username': 'u', 'password': 'S3cret'})
    assert 'S3cret' not in key and key != credentials_key({'username': 'u', 'password': 'other'})
    assert credentials_key(None) != credentials_key({'username': 'u'})


def test_plain_tcp_and_host_network_are_warned_of():
    assert security_warnings('n', {'base_url': 'unix:///var/run/docker.sock'}) == []
    assert security_warnings('n', {'base_url': 'tcp://10.0.0.1:2376', 'tls': {'verify': True}}) == []
    [plain] = security_warnings('n', {'base_url': 'tcp://10.0.0.1:2375'})
    assert 'plain TCP without TLS' in plain
    [host] = security_warnings('n', {'base_url': 'unix:///s', 'network': 'host'})
    assert 'loopback' in host


def test_a_blacklist_next_to_a_static_gpu_list_is_warned_about():
    both = {'base_url': 'unix:///x', 'hardware': {'gpus': [{'id': 0, 'vram': 1}], 'gpu_blacklist': [0]}}
    assert gpu_warnings('n1', both) == [
        'node n1: hardware.gpu_blacklist has no effect: hardware.gpus lists the GPUs (detection, which the blacklist '
        'applies to, is off); leave the blacklisted GPUs out of hardware.gpus']
    assert gpu_warnings('n1', {'base_url': 'unix:///x', 'hardware': {'gpu_blacklist': [0]}}) == []
