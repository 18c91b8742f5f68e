"""Test images built without a registry, and their distribution onto test engines.

Nothing can be pulled on the test machines, so both images are made from files of the host:

- ``BUSYBOX_IMAGE`` (``local/busybox:1``): static busybox (Debian ``busybox-static``) + one symlink per applet +
  ``/etc/passwd``/``/etc/group`` with root and ``user`` (uid/gid 1000). ~2 MB.
- ``TEST_IMAGE`` (``local/cc-test:1``): the busybox rootfs + the host's Debian ``/usr/bin/python3.11`` with the
  shared libraries of the interpreter and of its extension modules + its standard library (with Debian's
  bytecode) + the packages listed in ``localcluster/image/requirements.txt`` (``red-connector-http==1.0`` and its
  dependencies, installed with ``pip install --target`` as CPython 3.11 wheels and byte-compiled by the image's
  own interpreter) + the launcher ``/usr/local/bin/red-connector-http`` + the mounting test connector
  ``/usr/local/bin/red-connector-fuse-http`` with what it needs: fusepy (``requirements-source.txt``, pure Python),
  the host's Debian ``libfuse.so.2`` (``libfuse2``) and setuid-root ``fusermount`` (``fuse``), through which a
  non-root user mounts, and ``/etc/mtab`` as a link to ``/proc/self/mounts``. On a host without those two
  (the demo's machine; ``tests/run.sh`` installs them) the image is made without the FUSE connector, so a batch
  that mounts with it fails ("connector command ... was not found"), and everything else works.

Debian's python searches ``/usr/local/lib/python3.11/dist-packages`` (not ``site-packages``), so the packages are
installed there and ``site-packages`` is a symlink to it.

A rootfs tarball is written straight from the host files (no staging copy), then ``docker import``-ed on one engine
with ``ENV PATH`` and ``CMD``; that image is ``docker save``-d once, and every engine ``docker load``-s the saved
archive, so the image ID is the same on all engines (and across test runs while the cache lives). Both tarballs
live in ``<repo>/.cache/images/`` (``CC_TEST_CACHE`` overrides ``<repo>/.cache``), named by a hash of every input,
so a test session only builds them when an input changed.
"""

import concurrent.futures
import contextlib
import fcntl
import functools
import hashlib
import io
import json
import os
import platform
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
INPUTS_DIR = Path(__file__).resolve().parent / 'image'

TEST_IMAGE = 'local/cc-test:1'
BUSYBOX_IMAGE = 'local/busybox:1'
ALL_IMAGES = (TEST_IMAGE, BUSYBOX_IMAGE)

IMAGE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
# docker import has no Dockerfile: without ENV PATH the image has no PATH at all
IMPORT_CHANGES = ['ENV PATH=' + IMAGE_PATH, 'CMD ["/bin/sh"]']

HOST_FUSERMOUNT = '/usr/bin/fusermount'  # Debian `fuse`: libfuse 2's setuid mount helper
HOST_LIBFUSE = '/usr/lib/x86_64-linux-gnu/libfuse.so.2'  # Debian `libfuse2`; the connector's FUSE_LIBRARY_PATH
HOST_PYTHON = '/usr/bin/python3.11'   # Debian's interpreter, not a pyenv/venv one that may come first in PATH
PYTHON_VERSION = '3.11'
STDLIB_DIR = '/usr/lib/python3.11'
DIST_PACKAGES = 'usr/local/lib/python3.11/dist-packages'
# parts of the standard library that a test image never needs
STDLIB_EXCLUDED = {'test', 'idlelib', 'tkinter', 'turtledemo', 'lib2to3', 'ensurepip', 'site-packages',
                   'dist-packages', 'EXTERNALLY-MANAGED'}

PASSWD = ('root:x:0:0:root:/root:/bin/sh\n'
          'user:x:1000:1000:user:/home/user:/bin/sh\n'
          'nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n')
GROUP = 'root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n'


class ImageBuildError(RuntimeError):
    pass


def cache_dir():
    base = os.environ.get('CC_TEST_CACHE') or str(REPO_ROOT / '.cache')
    path = Path(base) / 'images'
    path.mkdir(parents=True, exist_ok=True)
    return path


# ---------------------------------------------------------------------------------------------------- host files

def _elf_interpreter(path):
    """PT_INTERP of an ELF file (None for a static binary); raises ImageBuildError if not a 64-bit ELF."""
    with open(path, 'rb') as f:
        header = f.read(64)
        if header[:4] != b'\x7fELF' or header[4] != 2:
            raise ImageBuildError('{} is not a 64-bit ELF binary'.format(path))
        endian = '<' if header[5] == 1 else '>'
        phoff, = struct.unpack_from(endian + 'Q', header, 0x20)
        phentsize, phnum = struct.unpack_from(endian + 'HH', header, 0x36)
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            p_type, _flags, p_offset, _vaddr, _paddr, p_filesz = struct.unpack(endian + 'IIQQQQ', f.read(40))
            if p_type == 3:  # PT_INTERP
                f.seek(p_offset)
                return f.read(p_filesz).rstrip(b'\0').decode()
    return None


def find_static_busybox():
    candidates = [os.environ.get('CC_BUSYBOX'), '/bin/busybox', '/usr/bin/busybox', shutil.which('busybox')]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and _elf_interpreter(candidate) is None:
            return os.path.realpath(candidate)
    raise ImageBuildError('no static busybox found (apt-get install busybox-static; tried {})'.format(
        [c for c in candidates if c]))


def _host_fuse():
    """(fusermount, libfuse.so.2) of the host, or () when it lacks one (apt-get install fuse libfuse2)."""
    if not os.path.isfile(HOST_FUSERMOUNT) or not os.path.isfile(HOST_LIBFUSE):
        return ()
    return HOST_FUSERMOUNT, HOST_LIBFUSE


def _host_python():
    if not os.path.isfile(HOST_PYTHON) or not os.path.isdir(STDLIB_DIR):
        raise ImageBuildError('{} and {} are needed (apt-get install python3)'.format(HOST_PYTHON, STDLIB_DIR))
    return HOST_PYTHON


def _shared_libraries(binaries):
    """Paths of the shared libraries (as ldd names them) that the given ELF files load, plus the ELF loader."""
    libraries = set()
    for binary in binaries:
        out = subprocess.run(['ldd', binary], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             universal_newlines=True).stdout
        for line in out.splitlines():
            parts = line.split()
            if '=>' in parts:
                target = parts[parts.index('=>') + 1]
                if target.startswith('/'):
                    libraries.add(target)
            elif parts and parts[0].startswith('/'):
                libraries.add(parts[0])
    interpreter = _elf_interpreter(binaries[0])
    if interpreter:
        libraries.add(interpreter)
    return sorted(libraries)


def _file_digest(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


@functools.lru_cache(maxsize=None)
def input_key(kind):
    """Hash of everything an image is made of: this module, the files in localcluster/image, the host binaries."""
    digest = hashlib.sha256()
    digest.update(kind.encode())
    digest.update(platform.machine().encode())
    digest.update(Path(__file__).read_bytes())
    digest.update(_file_digest(find_static_busybox()).encode())
    if kind == 'cc-test':
        digest.update(_file_digest(_host_python()).encode())
        for host_file in _host_fuse():
            digest.update(_file_digest(host_file).encode())
        digest.update(b'fuse' if _host_fuse() else b'no fuse')
        for path in sorted(INPUTS_DIR.iterdir()):
            if path.is_file():
                digest.update(path.name.encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------- rootfs tar

class _RootfsTar:
    """Writes a rootfs tar from host files; every entry belongs to root; parent directories are added as needed."""

    def __init__(self, path):
        self._tar = tarfile.open(path, 'w', format=tarfile.PAX_FORMAT)
        self._names = set()

    def close(self):
        self._tar.close()

    def _info(self, arcname, kind, mode, mtime=None):
        info = tarfile.TarInfo(arcname)
        info.type = kind
        info.mode = mode
        info.uid = info.gid = 0
        info.uname = info.gname = 'root'
        info.mtime = int(time.time()) if mtime is None else int(mtime)
        return info

    def directory(self, arcname, mode=0o755):
        arcname = arcname.strip('/')
        if not arcname or arcname in self._names:
            return
        self.directory(os.path.dirname(arcname))
        self._names.add(arcname)
        self._tar.addfile(self._info(arcname, tarfile.DIRTYPE, mode))

    def _parent(self, arcname):
        arcname = arcname.strip('/')
        self.directory(os.path.dirname(arcname))
        if arcname in self._names:
            return None
        self._names.add(arcname)
        return arcname

    def file(self, source, arcname, mode=None):
        """Adds the content of source (symlinks followed) as a regular file."""
        arcname = self._parent(arcname)
        if arcname is None:
            return
        st = os.stat(source)
        info = self._info(arcname, tarfile.REGTYPE, (st.st_mode & 0o7777) if mode is None else mode, st.st_mtime)
        info.size = st.st_size
        with open(source, 'rb') as f:
            self._tar.addfile(info, f)

    def data(self, arcname, content, mode=0o644):
        arcname = self._parent(arcname)
        if arcname is None:
            return
        if isinstance(content, str):
            content = content.encode()
        info = self._info(arcname, tarfile.REGTYPE, mode)
        info.size = len(content)
        self._tar.addfile(info, io.BytesIO(content))

    def symlink(self, arcname, target):
        arcname = self._parent(arcname)
        if arcname is None:
            return
        info = self._info(arcname, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        self._tar.addfile(info)

    def tree(self, source_dir, arcname, exclude=(), skip_pycache=False):
        """Adds a host directory recursively; symlinks are followed (dangling ones skipped)."""
        for root, dirs, files in os.walk(source_dir, followlinks=False):
            dirs[:] = sorted(d for d in dirs if d not in exclude and not any(
                d.startswith(prefix) for prefix in ('config-3',)) and not (skip_pycache and d == '__pycache__'))
            rel = os.path.relpath(root, source_dir)
            target_dir = arcname if rel == '.' else os.path.join(arcname, rel)
            self.directory(target_dir)
            for name in sorted(files):
                if name in exclude:
                    continue
                if os.path.basename(root) == '__pycache__':
                    # Debian's bytecode of the standard library, only the plain (non -O) variant
                    if not name.endswith('.cpython-311.pyc'):
                        continue
                source = os.path.join(root, name)
                if not os.path.exists(source):
                    continue
                self.file(source, os.path.join(target_dir, name))


def _add_busybox(rootfs, busybox):
    for name in ('bin', 'sbin', 'usr/bin', 'usr/sbin', 'usr/local/bin', 'etc', 'proc', 'sys', 'dev', 'root',
                 'home/user', 'work', 'var', 'run'):
        rootfs.directory(name)
    rootfs.directory('tmp', mode=0o1777)
    rootfs.file(busybox, 'bin/busybox', mode=0o755)
    # one link per applet where a Debian system has that command (/bin/sh, /usr/bin/env, ...)
    applets = subprocess.run([busybox, '--list-full'], stdout=subprocess.PIPE, check=True,
                             universal_newlines=True).stdout.split()
    for applet in applets:
        if os.path.basename(applet) != 'busybox':
            rootfs.symlink(applet, '/bin/busybox')
    rootfs.data('etc/passwd', PASSWD)
    rootfs.data('etc/group', GROUP)


def _in_rootfs(host_path):
    """Where a host library goes: its directory resolved (Debian's /lib -> usr/lib), its own name kept."""
    directory = os.path.realpath(os.path.dirname(host_path))
    return os.path.join(directory, os.path.basename(host_path)).lstrip('/')


def _pip_install_target(target):
    """Installs requirements.txt as CPython 3.11 wheels for this machine into target (a staging directory)."""
    machine = platform.machine()
    command = [sys.executable, '-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--no-compile',
               '--no-warn-script-location', '--no-warn-conflicts', '--target', target,
               '--only-binary=:all:', '--implementation', 'cp', '--python-version', PYTHON_VERSION,
               '--abi', 'cp311', '-r', str(INPUTS_DIR / 'requirements.txt')]
    for tag in ('manylinux2014', 'manylinux_2_17', 'manylinux_2_28', 'manylinux_2_34', 'linux'):
        command += ['--platform', '{}_{}'.format(tag, machine)]
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    if result.returncode != 0:
        raise ImageBuildError('pip install --target failed ({}):\n{}'.format(result.returncode, result.stdout))
    # pure-Python packages without wheels: built from source for any platform
    result = subprocess.run([sys.executable, '-m', 'pip', 'install', '--quiet', '--disable-pip-version-check',
                             '--no-compile', '--no-deps', '--no-warn-script-location', '--target', target,
                             '-r', str(INPUTS_DIR / 'requirements-source.txt')],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    if result.returncode != 0:
        raise ImageBuildError('pip install --target of the source packages failed ({}):\n{}'.format(
            result.returncode, result.stdout))
    # setuptools is an install-time dependency of jsonschema 3.2 only (it reads its version with importlib.metadata)
    for name in os.listdir(target):
        if name.startswith(('setuptools', '_distutils_hack', 'pkg_resources', 'distutils-precedence')):
            path = os.path.join(target, name)
            shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)
    # bytecode made by the image's own interpreter, with the paths the files have inside the image
    subprocess.run([HOST_PYTHON, '-m', 'compileall', '-q', '-j', '0', '--invalidation-mode', 'unchecked-hash',
                    '-s', target, '-p', '/' + DIST_PACKAGES, target], check=True, stdout=subprocess.DEVNULL)


def _add_python(rootfs, staging):
    python = _host_python()
    lib_dynload = os.path.join(STDLIB_DIR, 'lib-dynload')
    extensions = [os.path.join(lib_dynload, n) for n in os.listdir(lib_dynload) if n.endswith('.so')]
    for top in ('lib', 'lib64'):   # keep a merged-/usr host layout so that ld.so finds its default paths
        if os.path.islink('/' + top):
            rootfs.symlink(top, os.readlink('/' + top).lstrip('/'))
    fuse = _host_fuse()
    for library in _shared_libraries([python] + extensions + _extension_modules(staging) + list(fuse)):
        rootfs.file(library, _in_rootfs(library))
    if fuse:
        fusermount, libfuse = fuse
        rootfs.file(libfuse, _in_rootfs(libfuse))
        rootfs.file(fusermount, 'usr/bin/fusermount', mode=0o4755)  # setuid root: how a non-root user mounts FUSE
        rootfs.symlink('etc/mtab', '/proc/self/mounts')  # fusermount then leaves mtab alone
    rootfs.file(python, 'usr/bin/python3.11', mode=0o755)
    rootfs.symlink('usr/bin/python3', 'python3.11')
    rootfs.symlink('usr/bin/python', 'python3.11')
    rootfs.tree(STDLIB_DIR, STDLIB_DIR.lstrip('/'), exclude=STDLIB_EXCLUDED)
    packages = os.path.join(staging, 'packages')
    rootfs.tree(packages, DIST_PACKAGES, exclude={'bin'})
    rootfs.symlink(os.path.join(os.path.dirname(DIST_PACKAGES), 'site-packages'), 'dist-packages')
    rootfs.file(str(INPUTS_DIR / 'red-connector-http'), 'usr/local/bin/red-connector-http', mode=0o755)
    if fuse:
        rootfs.file(str(INPUTS_DIR / 'red-connector-fuse-http'), 'usr/local/bin/red-connector-fuse-http', mode=0o755)


def _extension_modules(staging):
    found = []
    for root, _dirs, files in os.walk(os.path.join(staging, 'packages')):
        found += [os.path.join(root, n) for n in files if n.endswith('.so')]
    return found


@contextlib.contextmanager
def _cache_lock():
    """Serialises builds between concurrent test sessions that share the cache."""
    with open(cache_dir() / '.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _image_stem(ref):
    return ref.split('/')[-1].replace(':', '-')


def rootfs_path(ref):
    kind = 'cc-test' if ref == TEST_IMAGE else 'busybox'
    return cache_dir() / '{}-{}.rootfs.tar'.format(_image_stem(ref), input_key(kind))


def archive_path(ref):
    """The cached `docker save` archive of ref (same hash as its rootfs)."""
    rootfs = rootfs_path(ref)
    return rootfs.with_name(rootfs.name.replace('.rootfs.tar', '.image.tar'))


def build_rootfs(ref):
    """Returns the path of the cached rootfs tarball of ref, building it if missing."""
    if ref not in ALL_IMAGES:
        raise ValueError('unknown test image {!r}'.format(ref))
    path = rootfs_path(ref)
    if path.exists():
        return path
    with _cache_lock():
        if path.exists():
            return path
        busybox = find_static_busybox()
        with tempfile.TemporaryDirectory(prefix='cca-img-') as staging:
            if ref == TEST_IMAGE:
                _pip_install_target(os.path.join(staging, 'packages'))
            partial = path.with_name(path.name + '.part{}'.format(os.getpid()))
            rootfs = _RootfsTar(str(partial))
            try:
                _add_busybox(rootfs, busybox)
                if ref == TEST_IMAGE:
                    _add_python(rootfs, staging)
            finally:
                rootfs.close()
            os.replace(str(partial), str(path))
        _prune_stale(ref, keep=path)
    return path


def _prune_stale(ref, keep):
    """Removes cached tarballs of ref made from older inputs."""
    key = keep.name[len(_image_stem(ref)) + 1:].split('.')[0]
    for old in cache_dir().glob(_image_stem(ref) + '-*.tar'):
        if key not in old.name:
            old.unlink()


# ---------------------------------------------------------------------------------------------------- engines

def _image_id(client, ref):
    import docker.errors
    try:
        return client.api.inspect_image(ref)['Id']
    except docker.errors.ImageNotFound:
        return None


def _archive_image_id(archive):
    """The image ID inside a `docker save` archive (its manifest's Config is <hex>.json)."""
    with tarfile.open(str(archive)) as tar:
        manifest = json.load(tar.extractfile('manifest.json'))
    config = manifest[0]['Config']
    return 'sha256:' + os.path.basename(config).split('.')[0]


def _import(client, ref, rootfs):
    repository, tag = ref.rsplit(':', 1)
    output = client.api.import_image(src=str(rootfs), repository=repository, tag=tag, changes=IMPORT_CHANGES)
    for line in output.splitlines():
        line = line.strip()
        if line and 'error' in json.loads(line):
            raise ImageBuildError('docker import of {} failed: {}'.format(ref, line))
    if _image_id(client, ref) is None:
        raise ImageBuildError('docker import of {} did not create the image: {}'.format(ref, output))


def _save(client, ref, archive):
    partial = archive.with_name(archive.name + '.part{}'.format(os.getpid()))
    with open(str(partial), 'wb') as f:
        for chunk in client.api.get_image(ref):
            f.write(chunk)
    os.replace(str(partial), str(archive))


def _load(client, ref, archive):
    with open(str(archive), 'rb') as f:
        client.api.load_image(f, quiet=True)
    if _image_id(client, ref) is None:
        raise ImageBuildError('docker load of {} did not create {}'.format(archive, ref))


def image_archive(ref, client):
    """Cached `docker save` archive of ref; made by importing the rootfs on client when missing."""
    archive = archive_path(ref)
    if archive.exists():
        return archive
    rootfs = build_rootfs(ref)
    with _cache_lock():
        if not archive.exists():
            _import(client, ref, rootfs)
            _save(client, ref, archive)
    return archive


def load_images(clients, refs=ALL_IMAGES):
    """Makes every ref present, with the same image ID, on every docker client (loads in parallel)."""
    clients = list(clients)
    if not clients:
        return {}
    ids = {}
    for ref in refs:
        archive = image_archive(ref, clients[0])
        wanted = _archive_image_id(archive)
        missing = [c for c in clients if _image_id(c, ref) != wanted]
        if missing:
            with concurrent.futures.ThreadPoolExecutor(len(missing)) as pool:
                list(pool.map(lambda c: _load(c, ref, archive), missing))
        ids[ref] = wanted
    return ids



def load_images_into(engines, refs=ALL_IMAGES):
    """`load_images` on clients of these engines (DockerEngine), opened here and closed again."""
    clients = [engine.client() for engine in engines]
    try:
        return load_images(clients, refs)
    finally:
        for client in clients:
            client.close()

def main(argv=None):
    """`python3 -m localcluster.images`: builds (or finds) the cached rootfs tarballs and prints timings."""
    for ref in ALL_IMAGES:
        t0 = time.monotonic()
        path = build_rootfs(ref)
        print('{}: {} ({:.1f} MB) in {:.2f} s'.format(ref, path, path.stat().st_size / 1e6, time.monotonic() - t0))


if __name__ == '__main__':
    main()
