"""The batch image of the side-by-side benchmark (benchmarks/peer_image.py), pulled from a loopback registry as the
agencies pull it: without the packages' bytecode it runs as uid 1000 and every process compiles again (nothing can
be written); with --compiled the bytecode is there."""
import pytest

from benchmarks import peer_image
from localcluster.registry import Registry

# what the benchmark relies on, seen from inside a container of the image
PROBE = ("import os, sys, glob, red_connector_http; "
         "d = os.path.dirname(red_connector_http.__file__); "
         "print(os.getuid(), os.getgid(), int(sys.dont_write_bytecode), "
         "len(glob.glob('/usr/local/lib/python3.11/dist-packages/**/*.pyc', recursive=True)), "
         "int(os.access(d, os.W_OK)), len(glob.glob('/usr/lib/python3.11/__pycache__/*.pyc')) > 100)")


@pytest.fixture(scope='module')
def registry():
    with Registry() as server:
        yield server


def run(engine_client, reference, *command):
    engine_client.images.pull(reference)
    try:
        return engine_client.containers.run(reference, list(command), remove=True, network_mode='none').decode()
    finally:
        engine_client.images.remove(reference, force=True)


def test_image_without_bytecode_runs_as_uid_1000_and_cannot_cache_bytecode(engine_client, registry):
    reference = peer_image.publish(engine_client, registry, compiled=False)
    assert reference == registry.url('bench/peer:no-pyc') and reference.startswith('127.0.0.1:')
    uid, gid, dont_write, package_pyc, writable, stdlib_compiled = run(
        engine_client, reference, 'python3', '-c', PROBE).split()
    assert (uid, gid, dont_write, package_pyc, writable, stdlib_compiled) == ('1000', '1000', '1', '0', '0', 'True')
    assert run(engine_client, reference, 'red-connector-http', 'cli-version').strip() == '1'


def test_compiled_image_keeps_the_packages_bytecode(engine_client, registry):
    reference = peer_image.publish(engine_client, registry, compiled=True)
    uid, _gid, dont_write, package_pyc, _writable, _stdlib = run(engine_client, reference, 'python3', '-c',
                                                                 PROBE).split()
    assert uid == '1000' and dont_write == '0' and int(package_pyc) > 50
