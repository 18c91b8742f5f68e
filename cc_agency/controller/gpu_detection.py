"""Which GPUs a node has, from what `nvidia-smi` printed in a container on it (pure: no I/O).

A node without `hardware.gpus` in the configuration gets its GPUs detected when its monitor connects to it, as
cc-agency 9.x did: the engine runs `DETECTION_COMMAND` in the node's `hardware.gpu_detection_image` with the `nvidia`
runtime (engines.py, `Engine.detect_gpus`), and the text it printed is parsed here into the same shape as
`hardware.gpus` entries (`id`, `vram` in MiB), plus the GPU's `uuid` and `name` for the operator. `id` is
nvidia-smi's index, which is what `NVIDIA_VISIBLE_DEVICES` and device requests take and what 9.x's
`hardware.gpu_blacklist` lists (integers), so the blacklist is applied to it.

Each format nvidia-smi prints is parsed as it comes from a real driver (tests/unit/test_gpu_detection.py reads the
outputs of an H100 machine in /work/shared/fixtures/nvidia-smi-h100/): the CSV of `--query-gpu` with or without
header and units, the XML of `-q -x` and the plain table. `nvidia-smi -L` names GPUs without their memory, so it
is refused with a clear reason rather than giving GPUs that placement could not match to a VRAM request.
"""
import re
import xml.etree.ElementTree as ElementTree

QUERY_FIELDS = ('index', 'uuid', 'name', 'memory.total')
DETECTION_COMMAND = ['nvidia-smi', '--query-gpu=' + ','.join(QUERY_FIELDS), '--format=csv,noheader,nounits']
NVIDIA_RUNTIME = 'nvidia'  # the name `nvidia-ctk runtime configure` registers the NVIDIA container runtime under
MAX_OUTPUT_BYTES = 1024 * 1024  # far more than nvidia-smi prints for a node's GPUs (the XML of one H100: 27 kB)

_MIB = re.compile(r'^\s*(\d+)\s*(MiB)?\s*$')
_TABLE_GPU_LINE = re.compile(r'^\|\s+(\d+)\s+(.+?)\s+(On|Off)\s+\|')
_TABLE_MEMORY = re.compile(r'(\d+)MiB\s*/\s*(\d+)MiB')
_LIST_LINE = re.compile(r'^GPU \d+: .+ \(UUID: ')


class GpuOutputError(ValueError):
    """What nvidia-smi printed is not a list of GPUs this parser knows; the message says why, in one line."""


def _mib(text, what):
    match = _MIB.match(text)
    if match is None:
        raise GpuOutputError('{} is not a number of MiB: {!r}'.format(what, text.strip()[:80]))
    return int(match.group(1))


def _gpu(index, vram_mib, uuid=None, name=None):
    gpu = {'id': index, 'vram': vram_mib}
    if uuid:
        gpu['uuid'] = uuid
    if name:
        gpu['name'] = name
    return gpu


def parse_query_csv(text, fields=QUERY_FIELDS):
    """GPUs from `nvidia-smi --query-gpu=<fields> --format=csv[,noheader][,nounits]`.

    With a header, columns are found by their names (`memory.total [MiB]`); without, they are `fields` in order
    (further columns, e.g. memory.used, are ignored). Needs index and memory.total.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    columns = [column.strip() for column in lines[0].split(',')]
    if 'index' in columns:  # a header line: `name [unit]`
        names = [re.sub(r'\s*\[.*\]$', '', column) for column in columns]
        lines = lines[1:]
    else:
        names = list(fields)
    for needed in ('index', 'memory.total'):
        if needed not in names:
            raise GpuOutputError('the nvidia-smi query has no {} column'.format(needed))
    gpus = []
    for line in lines:
        values = [value.strip() for value in line.split(',')]
        if len(values) < len(names):
            raise GpuOutputError('a line of nvidia-smi has {} values, {} expected: {!r}'.format(
                len(values), len(names), line.strip()[:80]))
        row = dict(zip(names, values))
        if not row['index'].isdigit():
            raise GpuOutputError('the GPU index is not a number: {!r}'.format(row['index'][:80]))
        gpus.append(_gpu(int(row['index']), _mib(row['memory.total'], 'memory.total'), row.get('uuid'),
                         row.get('name')))
    return gpus


def parse_xml(text):
    """GPUs from `nvidia-smi -q -x`: one <gpu> element each, in index order (the XML names no index)."""
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as e:
        raise GpuOutputError('nvidia-smi printed invalid XML ({})'.format(e))
    if root.tag != 'nvidia_smi_log':
        raise GpuOutputError('the XML is not an nvidia_smi_log but {!r}'.format(root.tag[:80]))
    gpus = []
    for index, element in enumerate(root.findall('gpu')):
        total = element.findtext('fb_memory_usage/total')
        if total is None:
            raise GpuOutputError('GPU {} of the XML has no fb_memory_usage/total'.format(index))
        gpus.append(_gpu(index, _mib(total, 'fb_memory_usage/total'), (element.findtext('uuid') or '').strip(),
                         (element.findtext('product_name') or '').strip()))
    return gpus


def parse_table(text):
    """GPUs from plain `nvidia-smi`: a GPU's first table line has its index and name, the next its memory."""
    lines = text.splitlines()
    gpus = []
    for number, line in enumerate(lines):
        match = _TABLE_GPU_LINE.match(line)
        if match is None:
            continue
        memory = _TABLE_MEMORY.search(lines[number + 1]) if number + 1 < len(lines) else None
        if memory is None:
            raise GpuOutputError('GPU {} of the nvidia-smi table has no memory usage line'.format(match.group(1)))
        gpus.append(_gpu(int(match.group(1)), int(memory.group(2)), name=match.group(2).strip()))
    return gpus


def parse_nvidia_smi(text):
    """[{id, vram (MiB), uuid?, name?}] from any output above (its format recognised by its first characters)."""
    stripped = text.strip()
    if not stripped or stripped.startswith('No devices were found'):
        return []
    if stripped.startswith('<?xml') or stripped.startswith('<nvidia_smi_log'):
        return parse_xml(stripped)
    if _LIST_LINE.match(stripped):
        raise GpuOutputError('nvidia-smi -L names GPUs without their memory; the detection needs --query-gpu')
    if '| NVIDIA-SMI ' in stripped[:1000]:  # the table's title line, after a time stamp
        return parse_table(stripped)
    return parse_query_csv(stripped)


def without_blacklisted(gpus, blacklist):
    """The detected GPUs less those whose index is in `hardware.gpu_blacklist` (9.x: a list of indices)."""
    excluded = set(blacklist or ())
    return [gpu for gpu in gpus if gpu['id'] not in excluded]
