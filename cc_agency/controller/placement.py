"""Placement core: which batch goes on which node (pure: plain data in, decisions out, no I/O).

As in Nomad's and Kubernetes' schedulers, each batch goes through three stages: filter the nodes that can hold
it now (online, free RAM, free GPUs with enough VRAM), score them by the strategy (`spread`: most free RAM,
`binpack`: least; a GPU node is a fallback for a batch without GPUs; ties by node name), pick the best. Batches
are taken in FIFO order, but one that fits nowhere right now does not block smaller ones behind it. A batch that
no node could ever hold is reported with the reason, so it can fail at once.
"""
from collections import namedtuple

SPREAD = 'spread'
BINPACK = 'binpack'

Gpu = namedtuple('Gpu', 'id vram_mib')
BatchRequest = namedtuple('BatchRequest', 'batch_id experiment_id ram_mib gpu_vram_mib')
Placement = namedtuple('Placement', 'batch_id node gpu_ids')
Unplaceable = namedtuple('Unplaceable', 'batch_id reason')


class NodeCapacity:
    """A node's resources and what placed batches already hold of them (mutated as batches are placed)."""

    __slots__ = ('name', 'ram_mib', 'used_ram_mib', 'gpus', 'used_gpu_ids', 'online')

    def __init__(self, name, ram_mib, used_ram_mib=0, gpus=(), used_gpu_ids=(), online=True):
        self.name = name
        self.ram_mib = ram_mib
        self.used_ram_mib = used_ram_mib
        self.gpus = tuple(gpus)
        self.used_gpu_ids = set(used_gpu_ids)
        self.online = online

    @property
    def free_ram_mib(self):
        return self.ram_mib - self.used_ram_mib

    def free_gpus(self):
        return [gpu for gpu in self.gpus if gpu.id not in self.used_gpu_ids]

    def hold(self, request, gpu_ids):
        self.used_ram_mib += request.ram_mib
        self.used_gpu_ids.update(gpu_ids)

    def release(self, ram_mib, gpu_ids):
        self.used_ram_mib -= ram_mib
        self.used_gpu_ids.difference_update(gpu_ids)


def match_gpus(gpus, vram_mins_mib):
    """Concrete GPU ids for the VRAM minimums, or None. Largest demand first, each on the smallest GPU that fits
    (optimal for this threshold matching: a GPU that fits a demand fits every smaller one)."""
    if not vram_mins_mib:
        return ()
    free = sorted(gpus, key=lambda gpu: (gpu.vram_mib, str(gpu.id)))
    chosen = []
    for vram_min in sorted(vram_mins_mib, reverse=True):
        for index, gpu in enumerate(free):
            if gpu.vram_mib >= vram_min:
                chosen.append(gpu.id)
                del free[index]
                break
        else:
            return None
    return tuple(chosen)


def fits_now(node, request):
    """Filter stage: the GPU ids the node would give, or None when it cannot hold the batch now."""
    if not node.online or node.free_ram_mib < request.ram_mib:
        return None
    return match_gpus(node.free_gpus(), request.gpu_vram_mib)


def never_fit_reason(nodes, request):
    """Why no node could hold the batch even when idle, or None if some node could."""
    if not nodes:
        return None  # no node known yet: wait rather than fail
    if all(node.ram_mib < request.ram_mib for node in nodes):
        return 'needs {} MiB RAM, but the largest node has {} MiB'.format(
            request.ram_mib, max(node.ram_mib for node in nodes))
    if request.gpu_vram_mib:
        if all(node.ram_mib < request.ram_mib or match_gpus(node.gpus, request.gpu_vram_mib) is None for node in nodes):
            return 'needs {} GPU(s) with at least {} MiB VRAM on one node with {} MiB RAM, no node has them'.format(
                len(request.gpu_vram_mib), '/'.join(str(v) for v in request.gpu_vram_mib), request.ram_mib)
    return None


def score(node, request, strategy):
    """Score stage: a sort key, smallest is best."""
    gpu_fallback = bool(node.gpus) and not request.gpu_vram_mib  # keep GPU nodes free for GPU batches
    free_ram = node.free_ram_mib if strategy == BINPACK else -node.free_ram_mib
    return (gpu_fallback, free_ram, node.name)


def place(requests, nodes, strategy, concurrency=None):
    """Place `requests` (FIFO order) on `nodes` (NodeCapacity, mutated to hold what is placed).

    `concurrency` maps experiment_id -> [limit, active] for experiments with a batchConcurrencyLimit (mutated).
    Returns (placements, unplaceable): unplaceable batches can never run on these nodes.
    """
    concurrency = concurrency if concurrency is not None else {}
    placements, unplaceable = [], []
    online = [node for node in nodes if node.online]
    smallest_free_needed = None
    for request in requests:
        reason = never_fit_reason(nodes, request)
        if reason:
            unplaceable.append(Unplaceable(request.batch_id, reason))
            continue
        limit = concurrency.get(request.experiment_id)
        if limit is not None and limit[1] >= limit[0]:
            continue
        if not request.gpu_vram_mib and smallest_free_needed is not None and request.ram_mib >= smallest_free_needed:
            continue  # a batch at least this large without GPUs already fitted nowhere in this pass
        best, best_gpu_ids, best_key = None, None, None
        for node in online:
            gpu_ids = fits_now(node, request)
            if gpu_ids is None:
                continue
            key = score(node, request, strategy)
            if best_key is None or key < best_key:
                best, best_gpu_ids, best_key = node, gpu_ids, key
        if best is None:
            if not request.gpu_vram_mib:
                smallest_free_needed = min(request.ram_mib, smallest_free_needed or request.ram_mib)
            continue
        best.hold(request, best_gpu_ids)
        if limit is not None:
            limit[1] += 1
        placements.append(Placement(request.batch_id, best.name, best_gpu_ids))
    return placements, unplaceable
