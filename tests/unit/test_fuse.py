"""Only a batch that mounts an input with FUSE gets the FUSE device and SYS_ADMIN, and only where the operator
allows it; otherwise it is told why at once (cc_agency/controller/fuse.py, engines.confinement)."""
from cc_agency.controller.engines import confinement
from cc_agency.controller.fuse import mounted_inputs, refusal


def _input(mount=None):
    connector = {'command': 'red-connector-ssh', 'access': {'host': 'h'}}
    if mount is not None:
        connector['mount'] = mount
    return {'class': 'Directory', 'connector': connector}


def test_mounted_inputs_are_those_whose_connector_says_mount_true():
    batch = {'inputs': {'data': _input(True), 'plain': _input(), 'off': _input(False), 'word': 'x',
                        'list': [_input(), _input(True)], 'odd': {'class': 'File', 'connector': 'not a map'}}}
    assert mounted_inputs(batch) == ['data', 'list']
    assert mounted_inputs({'inputs': {'plain': _input(), 'text': 'mount: true'}}) == []
    assert mounted_inputs({}) == []
    assert mounted_inputs({'inputs': {'x': _input('yes')}}) == []  # only the boolean true mounts (as the agent)


def test_a_mounting_batch_is_refused_with_the_key_it_needs_unless_allowed():
    assert refusal(['data'], allowed=False) == (
        'input data uses mount: true, which needs controller.docker.allow_insecure_capabilities: true on this '
        'agency (FUSE in the batch container)')
    assert refusal(['a', 'b'], allowed=False).startswith('inputs a, b use mount: true, which needs')
    assert refusal(['data'], allowed=True) is None
    assert refusal([], allowed=False) is None


def test_only_fuse_containers_get_the_device_sys_admin_and_may_gain_privileges():
    plain = confinement([], fuse=False)
    assert plain == {'cap_drop': ['ALL'], 'cap_add': None, 'security_opt': ['no-new-privileges'], 'devices': None}
    assert confinement(['CHOWN'])['cap_add'] == ['CHOWN']
    fused = confinement(['CHOWN'], fuse=True)
    assert fused == {'cap_drop': ['ALL'], 'cap_add': ['CHOWN', 'SYS_ADMIN'], 'security_opt': ['apparmor=unconfined'],
                     'devices': ['/dev/fuse:/dev/fuse:rwm']}
    assert confinement(['CAP_SYS_ADMIN'], fuse=True)['cap_add'] == ['CAP_SYS_ADMIN']  # named once
