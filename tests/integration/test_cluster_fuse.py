"""Inputs with `mount: true` (RED 9): on an agency with `controller.docker.allow_insecure_capabilities: true` the
batch's connector mounts a real FUSE filesystem in its container (the test image's red-connector-fuse-http: fusepy
over libfuse 2, mounted by the batch's non-root user through the setuid fusermount) and the command reads a file
from it; without the key the same RED fails at once with the reason; a batch that mounts nothing gets no FUSE
capabilities even where the key is set (its bounding set is empty and it cannot gain privileges)."""
import uuid

import pytest

from tests import reds
from tests.integration.cluster import batches_of, submit, user_session

SYS_ADMIN_BIT = 1 << 21  # CAP_SYS_ADMIN in /proc/self/status's CapBnd

# prints the mounted file, then the process's capability bounding set and no_new_privs flag
SCRIPT = (
    "import os, sys; d = sys.argv[1] if len(sys.argv) > 1 else None; "
    "print('content:' + (open(os.path.join(d, 'data.txt')).read() if d else '-')); "
    "print('mounted:' + str(bool(d) and os.path.ismount(d))); "
    "status = dict(line.split(':', 1) for line in open('/proc/self/status')); "
    "print('CapBnd:' + status['CapBnd'].strip()); print('NoNewPrivs:' + status['NoNewPrivs'].strip())"
)


def mount_red(fuse_file, mount=True):
    """One batch whose Directory input `data` is mounted by red-connector-fuse-http (or, without `mount`, no input)."""
    inputs = {'script': {'type': 'string', 'inputBinding': {'position': 0}}}
    batch_inputs = {'script': SCRIPT}
    if mount:
        inputs['data'] = {'type': 'Directory', 'inputBinding': {'position': 1}}
        batch_inputs['data'] = {'class': 'Directory', 'connector': {
            'command': 'red-connector-fuse-http', 'mount': True,
            'access': {'url': fuse_file.url, 'name': 'data.txt'}}}
    return {
        'redVersion': '9',
        'cli': {'cwlVersion': 'v1.0', 'class': 'CommandLineTool', 'baseCommand': ['python3', '-c'],
                'inputs': inputs, 'outputs': {}},
        'container': {'engine': 'docker', 'settings': {'image': {'url': reds.TEST_IMAGE}, 'ram': 256}},
        'batches': [{'inputs': batch_inputs, 'outputs': {}}],
    }


def printed(agency, session, batch):
    text = session.get('{}/batches/{}/stdout'.format(agency.url, batch['_id']), timeout=10).text
    return dict(line.split(':', 1) for line in text.splitlines() if ':' in line)


class FuseFile:
    """A file of the (session's) file server that only this test reads."""

    def __init__(self, file_server):
        self.server = file_server
        self.path = '/files/fuse-{}.txt'.format(uuid.uuid4().hex)
        self.url = file_server.url(self.path)
        file_server.add(self.path, b'served through FUSE')

    def reads(self):
        return self.server.requests_for(self.path, 'GET')


@pytest.fixture
def fuse_file(file_server):
    return FuseFile(file_server)


def test_a_mounted_input_is_read_through_fuse_where_the_agency_allows_it(make_agency, engine, fuse_file):
    agency = make_agency({'node1': {'base_url': engine.base_url, 'network': 'host'}},
                         extra={'controller.docker.allow_insecure_capabilities': True})
    alice = user_session(agency)
    [mounted] = batches_of(agency, alice, submit(agency, alice, mount_red(fuse_file)), 1)
    assert mounted['state'] == 'succeeded', mounted['history'][-1]
    out = printed(agency, alice, mounted)
    assert out['content'] == 'served through FUSE'
    assert out['mounted'] == 'True'
    assert int(out['CapBnd'], 16) & SYS_ADMIN_BIT  # what fusermount needs to mount
    assert fuse_file.reads()  # read by the connector in the container
    assert 'mounted with FUSE: its container on node node1 gets /dev/fuse and SYS_ADMIN' in agency.log('controller')

    # the same agency, a batch that mounts nothing: the confinement of every batch container
    [plain] = batches_of(agency, alice, submit(agency, alice, mount_red(fuse_file, mount=False)), 1)
    assert plain['state'] == 'succeeded', plain['history'][-1]
    out = printed(agency, alice, plain)
    assert int(out['CapBnd'], 16) == 0 and out['NoNewPrivs'] == '1', out


def test_a_mounted_input_fails_at_once_with_the_reason_without_the_key(make_agency, engine, fuse_file):
    agency = make_agency({'node1': {'base_url': engine.base_url, 'network': 'host'}}, attempts_to_fail=3)
    alice = user_session(agency)
    [refused] = batches_of(agency, alice, submit(agency, alice, mount_red(fuse_file)), 1)
    assert refused['state'] == 'failed' and refused['attempts'] == 1, refused['history']  # no retry
    assert refused['history'][-1]['debugInfo'] == [
        'attempt 1 on node node1 failed: input data uses mount: true, which needs controller.docker.allow_insecure_capabilities: true on this agency '
        '(FUSE in the batch container)']
    assert not fuse_file.reads()  # no container ran
