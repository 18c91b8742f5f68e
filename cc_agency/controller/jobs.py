"""What goes into a batch container: the job file and the archive that carries it with the agent (pure).

The job file holds the batch's connector secrets (with `_`-prefixes removed, as connectors expect them); it only
ever exists inside the archive sent to the engine and inside the running container, which the agent deletes
after reading it.
"""
import io
import json
import os
import tarfile

from cc_agency.secrets import usable_batch_access

AGENT_SOURCE_PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'agent', 'ccagent.py')
AGENT_PATH = '/cc/agent.py'
JOB_PATH = '/cc/job.json'
ENTRYPOINT = ['python3', AGENT_PATH, JOB_PATH]
MAX_OUTPUT_BYTES = 1024 * 1024


def job_file(batch, experiment, validate_connectors=True):
    """The job the agent runs: CLI, inputs and outputs with usable access data, options."""
    usable = usable_batch_access({'inputs': batch['inputs'], 'outputs': batch['outputs']})
    return {
        'batchId': str(batch['_id']),
        'cli': experiment['cli'],
        'inputs': usable['inputs'],
        'outputs': usable['outputs'],
        'options': {
            'validateConnectors': validate_connectors,
            'checkConnectorVersions': validate_connectors,
            'maxOutputBytes': MAX_OUTPUT_BYTES,
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
        _add(archive, 'cc/agent.py', agent_source, mode=0o644, uid=uid)
        _add(archive, 'cc/job.json', json.dumps(job).encode('utf-8'), mode=0o600, uid=uid)
    return buffer.getvalue()


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
