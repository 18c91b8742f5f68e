"""What goes into a batch container: the job file and the archive that carries it with the agent (pure).

The job file holds the batch's connector secrets (with `_`-prefixes removed, as connectors expect them); it only
ever exists inside the archive sent to the engine and inside the running container, which the agent deletes
after reading it.

Connector checks (`cli-version` of each connector, `*-validate` of each access) cost a connector call each (a fork
of the connector's fork server, or a process of its own for a connector that is not a console script: ~0.1-0.4
CPU-s for a Python connector). They are run once per experiment and image: the
agent prints `CHECKS_PASSED_LINE` on stderr once they passed, the controller records the checks that passed on the
experiment (`connectorChecksPassed`: "image|command|mode" entries), and a later batch of the experiment whose
checks are all recorded runs without them. Its own access data is then checked by the connector's receive or send
step itself, which reports the same problems. A failed check is a permanent failure of the batch (the image or the
access data is wrong; another attempt cannot help).
"""
import base64
import io
import json
import os
import posixpath
import tarfile

from cc_agency.agent import ccagent
from cc_agency.secrets import usable_batch_access

AGENT_SOURCE_PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'agent', 'ccagent.py')
AGENT_PATH = '/cc/agent.py'
JOB_PATH = '/cc/job.json'
ENTRYPOINT = ['python3', AGENT_PATH, JOB_PATH]
STREAMS_DIR = '/cc/' + ccagent.STREAMS_DIR_NAME  # the command's stdout/stderr files (ccagent.run_command_phase)
# the most of a container's stdout the controller reads (its tail): the agent's result, which names the files of the
# command's stdout and stderr instead of holding them (the controller reads those with get_archive), so it is the
# command line, the inputs, the outputs and debugInfo, in JSON whose \uXXXX escapes may make text six times longer
RESULT_MAX_BYTES = 4 * 1024 * 1024


CHECKS_PASSED_LINE = ccagent.CHECKS_PASSED_LINE.encode('utf-8')  # as the container's stderr carries it
CONNECTOR_CHECKS_FAILED = 'failed'
_PATH_TYPES = ccagent.PATH_CLASSES


def _validate_mode(direction, path_object):
    """The connector's `*-validate` mode for an input or output: the agent's own rule."""
    transfer = {'direction': direction, 'class': path_object.get('class'),
                'mount': direction == 'input' and bool((path_object.get('connector') or {}).get('mount'))}
    return ccagent.transfer_modes(transfer)[0]


def connector_check_entries(batch, image_url):
    """The checks the agent runs for this batch, as sorted "image|command|mode" strings (pure)."""
    entries = set()
    for direction, values in (('input', batch.get('inputs') or {}), ('output', batch.get('outputs') or {})):
        for value in values.values():
            for item in value if isinstance(value, list) else [value]:
                connector = item.get('connector') if isinstance(item, dict) else None
                if isinstance(connector, dict) and isinstance(connector.get('command'), str):
                    for mode in (ccagent.CLI_VERSION_MODE, _validate_mode(direction, item)):
                        entries.add('{}|{}|{}'.format(image_url, connector['command'], mode))
    return sorted(entries)


def _image_url(experiment):
    return experiment['container']['settings']['image']['url']


def connector_checks_needed(batch, experiment):
    """Whether this batch's container must run connector checks: not all of them passed before (pure)."""
    if experiment.get('disableConnectorValidation'):
        return False
    passed = set(experiment.get('connectorChecksPassed') or ())
    return not set(connector_check_entries(batch, _image_url(experiment))).issubset(passed)


def _uses_connectors(cli):
    types = [str(spec.get('type')) for spec in (cli.get('inputs') or {}).values() if isinstance(spec, dict)]
    return any(path_type in type_name for type_name in types for path_type in _PATH_TYPES) or bool(cli.get('outputs'))


def connector_checks_pending(experiment):
    """Whether the experiment's batches check connectors and none has passed yet: then one batch checks for all
    (the scheduler runs one at a time until then). Needs the fields of scheduler.EXPERIMENT_PROJECTION (pure)."""
    return (not experiment.get('disableConnectorValidation') and not experiment.get('connectorChecksPassed')
            and _uses_connectors(experiment.get('cli') or {}))


def agent_failure_is_permanent(result):
    """A failed connector check (wrong connector version, invalid access data) fails the batch for good."""
    return bool(result) and result.get('connectorChecks') == CONNECTOR_CHECKS_FAILED


def job_file(batch, experiment, validate_connectors=True):
    """The job the agent runs: CLI, inputs and outputs with usable access data, options."""
    validate_connectors = validate_connectors and connector_checks_needed(batch, experiment)
    usable = usable_batch_access({'inputs': batch['inputs'], 'outputs': batch['outputs']})
    return {
        'batchId': str(batch['_id']),
        'cli': experiment['cli'],
        'inputs': usable['inputs'],
        'outputs': usable['outputs'],
        'options': {
            'validateConnectors': validate_connectors,
            'checkConnectorVersions': validate_connectors,
        },
    }


def _add(archive, path, data=None, mode=0o644, uid=0):
    info = tarfile.TarInfo(path)
    info.mode = mode
    info.uid = info.gid = uid
    if data is None:
        info.type = tarfile.DIRTYPE
        archive.addfile(info)
    else:
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))


def container_archive(job, agent_source, uid=0):
    """A tar (bytes) to extract at `/`: /cc with the agent, the job file (0600) and the work directories."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w') as archive:
        _add(archive, 'cc', mode=0o755, uid=uid)
        _add(archive, 'cc/inputs', mode=0o755, uid=uid)
        _add(archive, 'cc/outputs', mode=0o755, uid=uid)
        _add(archive, STREAMS_DIR.lstrip('/'), mode=0o700, uid=uid)
        _add(archive, 'cc/agent.py', agent_source, mode=0o644, uid=uid)
        _add(archive, 'cc/job.json', json.dumps(job).encode('utf-8'), mode=0o600, uid=uid)
    return buffer.getvalue()


def pop_inline_streams(result):
    """{stream: bytes} of the streams the agent's result carries (small ones, base64), removed from `result` so
    that only the masked copy kept as the batch's output holds them; empty without a result or when they are malformed."""
    if result is None:
        return {}
    carried = result.pop(ccagent.STREAM_DATA_KEY, None)
    streams = {}
    for stream in ccagent.STREAM_TYPES:
        encoded = carried.get(stream) if isinstance(carried, dict) else None
        if isinstance(encoded, str):
            try:
                streams[stream] = base64.b64decode(encoded.encode('ascii'), validate=True)
            except (ValueError, UnicodeEncodeError):
                continue
    return streams


def read_agent_source():
    with open(AGENT_SOURCE_PATH, 'rb') as f:
        return f.read()


def parse_agent_result(stdout_bytes):
    """The agent's JSON result from the container's stdout, or None when it printed none."""
    text = stdout_bytes.decode('utf-8', errors='replace').strip()
    if not text:
        return None
    try:
        result = json.loads(text)
    except ValueError:
        # tolerate noise before the document (e.g. an image's login banner): use the last line
        try:
            result = json.loads(text.splitlines()[-1])
        except ValueError:
            return None
    return result if isinstance(result, dict) and result.get('state') in ('succeeded', 'failed') else None


def stream_files(result):
    """{'stdout': path, 'stderr': path} in the container of the command's streams, as the agent's result names them;
    only absolute paths below /cc (where the agent works), others are left out. Without a result (the agent was
    killed, say for memory) the files the agent uses when the CLI names none: what the command wrote until then (pure).
    """
    if result is None:
        return {stream: '{}/{}'.format(STREAMS_DIR, stream) for stream in ccagent.STREAM_TYPES}
    named = result.get(ccagent.STREAM_FILES_KEY)
    if not isinstance(named, dict):
        return {}
    files = {}
    for stream in ccagent.STREAM_TYPES:
        path = named.get(stream)
        if isinstance(path, str) and path.startswith('/cc/') and posixpath.normpath(path) == path:
            files[stream] = path
    return files
