"""Which batches mount an input with FUSE, and what their containers get for it (pure).

A RED input whose connector says `mount: true` is mounted by the connector inside the batch container (`mount-dir
ACCESS PATH`, e.g. with sshfs), so the container needs the FUSE device and the right to mount. That right is what
cc-agency 9.x gave with `controller.docker.allow_insecure_capabilities: true`: the device `/dev/fuse`, the capability
`SYS_ADMIN` and no AppArmor profile. A non-root user (the batch's `container_user`) mounts through a setuid-root
helper (`fusermount`), so such a container can also gain privileges (no `no-new-privileges`); its processes get
`SYS_ADMIN` through that helper, or any other setuid program of the image. That is why only batches that mount get
it, only on an agency whose operator allows it, and every other container keeps the confinement of engines.py.
Without the key a mounting batch fails at once with the reason (MOUNT_NEEDS_KEY), never retried.
"""

FUSE_DEVICE = '/dev/fuse:/dev/fuse:rwm'
FUSE_CAPABILITIES = ('SYS_ADMIN',)
# no AppArmor profile: docker's default one forbids mount(2); an engine without AppArmor ignores this
FUSE_SECURITY_OPT = ('apparmor=unconfined',)
ALLOW_KEY = 'controller.docker.allow_insecure_capabilities'


def mounted_inputs(batch):
    """Names of the batch's inputs (sorted) whose connector has `mount: true` (a list input counts once)."""
    names = set()
    for name, value in (batch.get('inputs') or {}).items():
        for item in value if isinstance(value, list) else [value]:
            connector = item.get('connector') if isinstance(item, dict) else None
            if isinstance(connector, dict) and connector.get('mount') is True:
                names.add(name)
    return sorted(names)


def refusal(mounted, allowed):
    """The reason a batch with these mounted inputs cannot run here, or None when it can."""
    if not mounted or allowed:
        return None
    return '{} {} mount: true, which needs {}: true on this agency (FUSE in the batch container)'.format(
        'input {}'.format(mounted[0]) if len(mounted) == 1 else 'inputs {}'.format(', '.join(mounted)),
        'uses' if len(mounted) == 1 else 'use', ALLOW_KEY)
