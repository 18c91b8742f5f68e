"""Placement core: which batch goes on which node (pure: plain data in, decisions out, no I/O).

As in Nomad's and Kubernetes' schedulers, each batch goes through three stages:
- filter: the nodes that can hold it now (online, enough free RAM, free GPUs with enough VRAM each);
- score: `spread` prefers the most free RAM, `binpack` the least; a node with GPUs is a fallback for a batch
  without GPUs (it keeps them free for batches that need them); ties go to the smallest node name (`score()`);
- pick: the best feasible node.
Batches are taken in FIFO order, but one that fits nowhere right now does not block smaller ones behind it. A batch
that no node could ever hold, even idle, is reported with the reason, so it can fail at once.

Speed (100,000 queued batches, 1,000 nodes): the nodes of each kind (with and without GPUs) are kept sorted by
their score (`RamOrder`), so the best node with enough free RAM is found by bisection instead of a scan of every
node, and only GPU batches walk further down that order, until the first node whose free GPUs match. Within one
pass resources are only taken, never given back, so a request shape that found no node stays without one: it is
rejected at once for the rest of the pass, and the pass stops as soon as the largest free RAM is below every
remaining request.
"""
from bisect import bisect_left, insort
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


# --- filter ---------------------------------------------------------------------------------------------------------

def match_gpus(gpus, vram_mins_mib):
    """Concrete GPU ids for the VRAM minimums, or None. Largest demand first, each on the smallest GPU that fits
    (optimal for this threshold matching: a GPU that fits a demand fits every smaller one)."""
    if not vram_mins_mib:
        return ()
    if len(vram_mins_mib) > len(gpus):
        return None
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
            most = max(len(node.gpus) for node in nodes)
            largest = max((gpu.vram_mib for node in nodes for gpu in node.gpus), default=0)
            if not any(request.gpu_vram_mib):
                return 'needs {} GPU(s) on one node with {} MiB RAM, but no node has them (the most GPUs of a ' \
                       'node: {})'.format(len(request.gpu_vram_mib), request.ram_mib, most)
            return 'needs {} GPU(s) with at least {} MiB VRAM on one node with {} MiB RAM, but no node has them ' \
                   '(the largest GPU has {} MiB VRAM)'.format(len(request.gpu_vram_mib),
                                                              '/'.join(str(v) for v in request.gpu_vram_mib),
                                                              request.ram_mib, largest)
    return None


# --- score ----------------------------------------------------------------------------------------------------------

def score(node, request, strategy):
    """Score stage: a sort key, smallest is best. `RamOrder` keeps nodes in exactly this order."""
    gpu_fallback = bool(node.gpus) and not request.gpu_vram_mib  # keep GPU nodes free for GPU batches
    free_ram = node.free_ram_mib if strategy == BINPACK else -node.free_ram_mib
    return (gpu_fallback, free_ram, node.name)


class RamOrder:
    """Nodes of one kind sorted by score (free RAM by the strategy, then name), to find the best with enough RAM.

    `spread` keeps (-free, name): the nodes with enough free RAM are a prefix, best first. `binpack` keeps
    (free, name): they are the suffix from the first key >= (ram,), best first. A node whose free RAM changes is
    moved with `update()` (bisect + insert: O(log n) comparisons).
    """

    def __init__(self, nodes, strategy):
        self._spread = strategy == SPREAD
        self._by_name = {node.name: node for node in nodes}
        self._keys = sorted(self._key(node.free_ram_mib, node.name) for node in nodes)

    def _key(self, free_ram_mib, name):
        return (-free_ram_mib if self._spread else free_ram_mib, name)

    def __len__(self):
        return len(self._keys)

    def max_free_ram_mib(self):
        if not self._keys:
            return None
        return -self._keys[0][0] if self._spread else self._keys[-1][0]

    def candidates(self, ram_mib):
        """Nodes with at least `ram_mib` free, best first (stop consuming before calling `update()`)."""
        keys = self._keys
        if self._spread:
            for free_key, name in keys:
                if -free_key < ram_mib:
                    return
                yield self._by_name[name]
        else:
            for index in range(bisect_left(keys, (ram_mib,)), len(keys)):
                yield self._by_name[keys[index][1]]

    def update(self, node, old_free_ram_mib):
        keys = self._keys
        del keys[bisect_left(keys, self._key(old_free_ram_mib, node.name))]
        insort(keys, self._key(node.free_ram_mib, node.name))


# --- pick -----------------------------------------------------------------------------------------------------------

class Placer:
    """The placement state of one pass: node orders, concurrency counters, and what is known not to fit.

    `concurrency` maps experiment_id -> [limit, active] for experiments whose active batches are limited
    (mutated as batches are placed). Nodes (NodeCapacity) are mutated to hold what is placed.
    """

    def __init__(self, nodes, strategy, concurrency=None):
        self.nodes = list(nodes)
        self.strategy = strategy
        self.concurrency = concurrency if concurrency is not None else {}
        online = [node for node in self.nodes if node.online]
        self._plain = RamOrder([node for node in online if not node.gpus], strategy)
        self._with_gpus = RamOrder([node for node in online if node.gpus], strategy)
        self._never_fit = {}  # request shape -> reason or None
        self._no_node_now = set()  # request shapes that found no node in this pass

    def max_free_ram_mib(self):
        """The most free RAM of any online node (0 when none is online): nothing larger can be placed now."""
        return max(order.max_free_ram_mib() or 0 for order in (self._plain, self._with_gpus))

    def max_free_gpu_count(self):
        """The most free GPUs of any online node: no batch asking for more can be placed now."""
        return max([len(node.gpus) - len(node.used_gpu_ids) for node in self.nodes if node.online and node.gpus],
                   default=0)

    def never_fit_reason(self, request):
        shape = (request.ram_mib, request.gpu_vram_mib)
        if shape not in self._never_fit:
            self._never_fit[shape] = never_fit_reason(self.nodes, request)
        return self._never_fit[shape]

    def at_limit(self, experiment_id):
        limit = self.concurrency.get(experiment_id)
        return limit is not None and limit[1] >= limit[0]

    def place(self, request):
        """A Placement (resources now held), an Unplaceable (can never run), or None (cannot run now)."""
        reason = self.never_fit_reason(request)
        if reason:
            return Unplaceable(request.batch_id, reason)
        if self.at_limit(request.experiment_id):
            return None
        shape = (request.ram_mib, request.gpu_vram_mib)
        if shape in self._no_node_now:
            return None
        node, gpu_ids = self._best_node(request)
        if node is None:
            self._no_node_now.add(shape)
            return None
        old_free = node.free_ram_mib
        node.hold(request, gpu_ids)
        (self._with_gpus if node.gpus else self._plain).update(node, old_free)
        limit = self.concurrency.get(request.experiment_id)
        if limit is not None:
            limit[1] += 1
        return Placement(request.batch_id, node.name, gpu_ids)

    def _best_node(self, request):
        """The first feasible node in score order: plain nodes, then GPU nodes, each by free RAM."""
        if not request.gpu_vram_mib:
            for order in (self._plain, self._with_gpus):
                for node in order.candidates(request.ram_mib):
                    return node, ()
            return None, None
        for node in self._with_gpus.candidates(request.ram_mib):
            gpu_ids = match_gpus(node.free_gpus(), request.gpu_vram_mib)
            if gpu_ids is not None:
                return node, gpu_ids
        return None, None


def place(requests, nodes, strategy, concurrency=None):
    """Place `requests` (FIFO order) on `nodes` (NodeCapacity, mutated to hold what is placed).

    `concurrency` maps experiment_id -> [limit, active] for experiments with a batchConcurrencyLimit (mutated).
    Returns (placements, unplaceable): unplaceable batches can never run on these nodes.
    """
    requests = list(requests)
    placer = Placer(nodes, strategy, concurrency)
    # the smallest RAM request from each position on: once no node has that much free, nothing after it fits now
    smallest_from = list(requests)
    smallest = None
    for index in range(len(requests) - 1, -1, -1):
        ram = requests[index].ram_mib
        smallest = ram if smallest is None or ram < smallest else smallest
        smallest_from[index] = smallest
    placements, unplaceable = [], []
    for index, request in enumerate(requests):
        if placer.max_free_ram_mib() < smallest_from[index]:
            # the rest waits for the next pass; only batches that can never run are still looked for
            unplaceable.extend(Unplaceable(r.batch_id, placer.never_fit_reason(r)) for r in requests[index:]
                               if placer.never_fit_reason(r))
            break
        decision = placer.place(request)
        if isinstance(decision, Placement):
            placements.append(decision)
        elif isinstance(decision, Unplaceable):
            unplaceable.append(decision)
    return placements, unplaceable
