"""A local cluster of real services, for the demo, the tests and the benchmarks alike.

Docker engines (one dockerd per "node", or the demo's one), a MongoDB-wire server (SecantusDB, its own process),
the local batch image (python3 + red-connector-http from host files, no registry), an HTTP file server, a
registry on loopback, and a whole agency (controller and broker processes) on them. Plain Python (no pytest
needed)::

    from localcluster import MongoServer, start_engines, stop_engines, load_images_into, FileServer, TEST_IMAGE

    with MongoServer() as mongo, FileServer() as files:
        engines = start_engines(3)
        try:
            load_images_into(engines)
            ...
        finally:
            stop_engines(engines)

Every process is started by these classes and stopped by PID; nothing is shared with the host's own dockerd.
It is not part of the installed product (setup.py packages only cc_agency): it runs from a checkout. pytest
fixtures wrapping it are in tests/conftest.py. Facts behind the choices: ../shared/docs/TESTING.md.
"""
import importlib

# name -> module: imported on first use, so that a part needing only the standard library (the demo's `stop`,
# processes, engines) does not pull in pymongo, docker or requests
_EXPORTS = {
    'API_VERSION': 'engines', 'DockerEngine': 'engines', 'EngineError': 'engines', 'make_ca': 'engines',
    'start_engines': 'engines', 'stop_engines': 'engines',
    'FileServer': 'fileserver',
    'BUSYBOX_IMAGE': 'images', 'TEST_IMAGE': 'images', 'ImageBuildError': 'images', 'build_rootfs': 'images',
    'load_images': 'images', 'load_images_into': 'images',
    'MongoServer': 'mongo', 'MongoServerError': 'mongo',
    'free_port': 'processes',
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError('module {!r} has no attribute {!r}'.format(__name__, name))
    return getattr(importlib.import_module('.' + _EXPORTS[name], __name__), name)
