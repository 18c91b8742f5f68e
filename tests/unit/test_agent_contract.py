"""The controller and the agent in the container share one contract: the checks the controller records as passed
are exactly the connector calls the agent makes to check, and the line and version are the agent's own."""

from cc_agency import version
from cc_agency.agent import ccagent
from cc_agency.controller import jobs

IMAGE = 'registry.example/img:1'


def connector(command, mount=False):
    return {'command': command, 'access': {'url': 'http://127.0.0.1/x'}, 'mount': mount}


CLI = {'cwlVersion': 'v1.0', 'class': 'CommandLineTool', 'baseCommand': 'run',
       'inputs': {'a': {'type': 'File'}, 'd': {'type': 'Directory'}, 'm': {'type': 'Directory'},
                  'many': {'type': 'File[]'}},
       'outputs': {'o': {'type': 'File', 'outputBinding': {'glob': 'o.txt'}},
                   'od': {'type': 'Directory', 'outputBinding': {'glob': 'od'}}}}
BATCH = {
    '_id': 'b1',
    'inputs': {'a': {'class': 'File', 'connector': connector('c-file')},
               'd': {'class': 'Directory', 'connector': connector('c-dir')},
               'm': {'class': 'Directory', 'connector': connector('c-mount', mount=True)},
               'many': [{'class': 'File', 'connector': connector('c-file')}]},
    'outputs': {'o': {'class': 'File', 'connector': connector('c-send')},
                'od': {'class': 'Directory', 'connector': connector('c-send-dir')}},
}


def agent_check_calls(job):
    """The (command, mode) pairs the agent runs as checks for a job, by its own planning functions."""
    inputs = job['inputs']
    transfers = ccagent.plan_input_transfers(inputs, ccagent.compute_input_paths(inputs, '/cc/inputs'))
    transfers += ccagent.plan_output_connectors(job['cli'], job['outputs'])
    for transfer in transfers:
        transfer.setdefault('mount', False)
        transfer.setdefault('path', None)
        transfer.setdefault('listing', None)
    options = ccagent.read_options(job)
    return sorted({(call['command'], call['mode']) for call in ccagent.connector_check_invocations(transfers, options)})


def test_the_checks_the_controller_records_are_the_checks_the_agent_runs():
    experiment = {'cli': CLI, 'container': {'settings': {'image': {'url': IMAGE}}}}
    job = jobs.job_file(BATCH, experiment)
    assert job['options']['validateConnectors'] and job['options']['checkConnectorVersions']
    recorded = sorted(tuple(entry.split('|')[1:]) for entry in jobs.connector_check_entries(BATCH, IMAGE))
    assert recorded == agent_check_calls(job)
    assert ('c-mount', 'mount-dir-validate') in recorded and ('c-send-dir', 'send-dir-validate') in recorded


def test_the_checks_passed_line_and_the_cli_version_are_the_agents():
    assert jobs.CHECKS_PASSED_LINE == ccagent.CHECKS_PASSED_LINE.encode('utf-8')
    assert version.CONNECTOR_CLI_VERSION == ccagent.CONNECTOR_CLI_VERSION


def test_the_streams_the_agent_carries_are_the_bytes_the_controller_keeps(tmp_path):
    (tmp_path / 'stdout').write_bytes(bytes(range(256)))
    (tmp_path / 'stderr').write_bytes(b'x' * (ccagent.STREAM_INLINE_MAX_BYTES + 1))  # too big: read from the file
    result = {'state': 'succeeded', ccagent.STREAM_DATA_KEY: ccagent.small_streams(
        {stream: str(tmp_path / stream) for stream in ccagent.STREAM_TYPES})}
    assert jobs.pop_inline_streams(result) == {'stdout': bytes(range(256))}
    assert result == {'state': 'succeeded'}  # the streams are not kept in the batch's result


def test_malformed_carried_streams_are_left_out():
    assert jobs.pop_inline_streams(None) == {}
    assert jobs.pop_inline_streams({ccagent.STREAM_DATA_KEY: 'not a map'}) == {}
    result = {ccagent.STREAM_DATA_KEY: {'stdout': '!!not base64!!', 'stderr': 'aGk=', 'other': 'aGk='}}
    assert jobs.pop_inline_streams(result) == {'stderr': b'hi'}
