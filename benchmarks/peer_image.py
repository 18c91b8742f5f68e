"""The batch image of the side-by-side benchmark, as a user would build it, served from a registry on loopback.

cc-agency 9.3 pulls the experiment's image on every scheduling cycle and cannot skip the pull, so an image that
exists only on the engine fails there; both agencies therefore get the same `127.0.0.1:<port>/...` reference from a
`localcluster.registry.Registry` started by the benchmark.

The image is the test image's root file system (localcluster/images.py: Debian's python3.11 with its standard
library and red-connector-http 1.0) changed the way a common user image is made:

- `compiled=False` (the default): the Python packages without `.pyc` files (what `pip install --no-compile` leaves)
  and `ENV PYTHONDONTWRITEBYTECODE=1`, run as `USER 1000:1000`, which cannot write `site-packages` anyway: every
  process recompiles every module it imports (0.39 s instead of 0.08 s for the connector's imports, measured in
  ../shared/docs/TESTING.md);
- `compiled=True`: the same with the packages' bytecode kept.

9.3 runs batch containers as the image's user, this project as `controller.docker.container_user` (1000:1000 by
default), so `USER 1000:1000` makes both run batches as uid 1000. The derived root file system is cached outside
the checkout (`~/.cache/cc-agency-peer/images`), named after the test image's tarball it comes from.
"""
import os
import tarfile

from localcluster.images import DIST_PACKAGES, IMAGE_PATH, TEST_IMAGE, build_rootfs

CACHE_DIR = os.path.join(os.path.expanduser('~'), '.cache', 'cc-agency-peer', 'images')

CHANGES_COMMON = ['ENV PATH=' + IMAGE_PATH, 'USER 1000:1000', 'CMD ["/bin/sh"]']
CHANGES_NO_BYTECODE = CHANGES_COMMON + ['ENV PYTHONDONTWRITEBYTECODE=1']


def is_package_bytecode(name):
    """True for the .pyc files (and their __pycache__ directories) of the installed packages, not the stdlib's."""
    name = name.lstrip('./')
    return name.startswith(DIST_PACKAGES + '/') and (name.endswith('.pyc') or name.endswith('/__pycache__')
                                                     or '/__pycache__/' in name + '/')


def without_package_bytecode(source, target):
    """Copies the tar `source` to `target` without the packages' bytecode; returns how many members were left out."""
    left_out = 0
    partial = target + '.part{}'.format(os.getpid())
    with tarfile.open(source) as src, tarfile.open(partial, 'w', format=tarfile.PAX_FORMAT) as dst:
        for member in src:
            if is_package_bytecode(member.name):
                left_out += 1
                continue
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    os.replace(partial, target)
    return left_out


def rootfs(compiled):
    """Path of the root file system tarball of the benchmark image (built from the test image's when missing)."""
    base = str(build_rootfs(TEST_IMAGE))
    if compiled:
        return base
    os.makedirs(CACHE_DIR, exist_ok=True)
    target = os.path.join(CACHE_DIR, os.path.basename(base).replace('.rootfs.tar', '.no-pyc.rootfs.tar'))
    if not os.path.exists(target):
        without_package_bytecode(base, target)
    return target


def publish(engine_client, registry, compiled=False):
    """Imports the image on one engine, pushes it to `registry` and removes the local copy (the agencies pull it).
    Returns its reference, `127.0.0.1:<port>/bench/peer:<compiled|no-pyc>`."""
    tag = 'compiled' if compiled else 'no-pyc'
    local = 'bench/peer-local:' + tag
    repository, _ = local.rsplit(':', 1)
    engine_client.api.import_image(src=rootfs(compiled), repository=repository, tag=tag,
                                   changes=CHANGES_COMMON if compiled else CHANGES_NO_BYTECODE)
    reference = registry.push(engine_client, local, 'bench/peer:' + tag)
    engine_client.images.remove(local)
    return reference
