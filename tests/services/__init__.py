"""Real services for tests and benchmarks: Docker engines, a MongoDB-wire server, test images, an HTTP file server.

Plain Python (no pytest needed), so benchmark scripts use them too::

    from tests.services import MongoServer, start_engines, stop_engines, load_images_into, FileServer, TEST_IMAGE

    with MongoServer() as mongo, FileServer() as files:
        engines = start_engines(3)
        try:
            load_images_into(engines)
            ...
        finally:
            stop_engines(engines)

Every process is started by these classes and stopped by PID; nothing is shared with the host's own dockerd.
pytest fixtures wrapping them are in tests/conftest.py. Facts behind the choices: ../shared/docs/TESTING.md.
"""

from .engines import API_VERSION, DockerEngine, EngineError, make_ca, start_engines, stop_engines
from .fileserver import FileServer
from .images import BUSYBOX_IMAGE, TEST_IMAGE, ImageBuildError, build_rootfs, load_images, load_images_into
from .mongo import MongoServer, MongoServerError
from .processes import free_port

__all__ = ['API_VERSION', 'BUSYBOX_IMAGE', 'DockerEngine', 'EngineError', 'FileServer', 'ImageBuildError',
           'MongoServer', 'MongoServerError', 'TEST_IMAGE', 'build_rootfs', 'free_port', 'load_images',
           'load_images_into', 'make_ca', 'start_engines', 'stop_engines']
