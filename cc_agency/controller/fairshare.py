"""Fair share between users: dominant-resource fairness over RAM and GPUs (pure: plain data in, order out).

Why: on a shared cluster, first-come-first-served lets whoever submits a large experiment first hold every node
until that queue drains, and a colleague's three batches wait behind thirty. With dominant-resource fairness (DRF,
Ghodsi et al. 2011, as Mesos and YARN schedule) a user's share is the larger of the fractions of the cluster's RAM
and of its GPUs that the user's scheduled and processing batches hold, divided by the user's weight. The next
placement goes to the user with the smallest share who has a batch that fits now; within one user batches go
oldest first. So while several users have work their shares approach their weights, a user alone gets the whole
cluster, and nobody starves: a share only grows by what its user is given, and finished batches give it back.

`fair_pass` is the loop of one scheduling pass over per-user queues; the scheduler hands it lazily read queues
(cc_agency/controller/scheduler.py) and its own placement callback, so this module never sees the database.

On a node, the same fairness holds for the CPU: RAM and GPUs are reserved, but CPU time is shared by whatever runs,
so without weights a user with ten batches on a node gets ten elevenths of its CPU and a colleague's one batch the
rest. `cpu_shares` gives each container a CPU weight (Docker's `cpu_shares`, the cgroup's cpu.weight): a user's
batches on a node share one total weight, so that under contention users get about the same CPU time, and a batch
alone on a node is not slowed at all (weights only matter under contention). That total is 1024 x CPUs / min(n,
CPUs) for a user with n batches on a node of that many CPUs: 1024 for every user who has a batch on every CPU, more
for a user with fewer batches than CPUs. Weights divide each CPU's time, and such a user can use only as many CPUs
as it has batches, while a user with many has batches on every CPU. With a total of 1024 for everyone (each
container 1024 / n) a colleague's one batch beside a ten-batch sweep on two CPUs got about half a core
(bench_peer.py --big-queue, benchmarks/README.md). With these totals its batch outweighs the sweep's ten together,
and the batches of a user with fewer batches than CPUs get about a CPU each before the others take the rest
(max-min fairness).
"""
import heapq

FAIR = 'fair'
FIFO = 'fifo'
POLICIES = (FAIR, FIFO)  # controller.scheduling.policy (cc_agency/config.py lists the same names)
DEFAULT_WEIGHT = 1
CPU_SHARES_PER_USER = 1024  # Docker's default weight of one container
MIN_CPU_SHARES, MAX_CPU_SHARES = 2, 262144  # what Docker accepts


def cpu_shares(user_batches_on_node, node_cpus=None):
    """The CPU weight of a container of a user who runs `user_batches_on_node` batches on its node, itself
    included, on a node of `node_cpus` CPUs (unknown: as one CPU, a total of 1024 per user) (pure)."""
    batches = max(1, user_batches_on_node)
    cpus = max(1, node_cpus or 1)
    weight = CPU_SHARES_PER_USER * cpus // (batches * min(batches, cpus))
    return min(MAX_CPU_SHARES, max(MIN_CPU_SHARES, weight))


class DominantShares:
    """What each user holds of the cluster, and their weighted dominant share.

    :param total_ram_mib: RAM of the nodes that can take work
    :param total_gpus: number of GPUs of those nodes (0: GPUs do not count)
    :param weights: {username: weight > 0}; users not named have DEFAULT_WEIGHT
    """

    def __init__(self, total_ram_mib, total_gpus, weights=None):
        self.total_ram_mib = total_ram_mib
        self.total_gpus = total_gpus
        self.weights = dict(weights or {})
        self.ram_mib = {}
        self.gpus = {}

    def weight(self, user):
        return self.weights.get(user, DEFAULT_WEIGHT)

    def charge(self, user, ram_mib, gpu_count):
        """`user` now holds `ram_mib` and `gpu_count` GPUs more (a batch scheduled or processing)."""
        self.ram_mib[user] = self.ram_mib.get(user, 0) + ram_mib
        self.gpus[user] = self.gpus.get(user, 0) + gpu_count

    def dominant_share(self, user):
        """The larger of the user's fractions of the cluster's RAM and GPUs (0..1, unweighted)."""
        fractions = [0.0]
        if self.total_ram_mib > 0:
            fractions.append(self.ram_mib.get(user, 0) / self.total_ram_mib)
        if self.total_gpus > 0:
            fractions.append(self.gpus.get(user, 0) / self.total_gpus)
        return max(fractions)

    def share(self, user):
        """The dominant share divided by the user's weight: the smaller, the sooner the user is served."""
        return self.dominant_share(user) / self.weight(user)


def fair_pass(queues, shares, place, has_room=lambda: True):
    """Give placements to users by smallest weighted dominant share, each user's queue in FIFO order.

    :param queues: {user: iterable of items, oldest first}; read lazily, only as far as placements need
    :param shares: DominantShares holding what is placed already (charged with every new placement)
    :param place: place(item) -> (ram_mib, gpu_count) the item now holds, or None when it was not placed (it
        waits for a later pass, or it failed); an item not placed does not block the user's later items
    :param has_room: False once nothing more can be placed in this pass (the pass stops)
    Returns [(user, item)] in the order they were placed. Ties between equal shares go to the smaller user name,
    so that a pass is deterministic.
    """
    iterators = {user: iter(items) for user, items in queues.items()}
    heap = [(shares.share(user), _sort_key(user)) for user in iterators]
    heapq.heapify(heap)
    placed = []
    while heap and has_room():
        _, (_, user) = heapq.heappop(heap)
        for item in iterators[user]:
            held = place(item)
            if held is not None:
                shares.charge(user, *held)
                placed.append((user, item))
                heapq.heappush(heap, (shares.share(user), _sort_key(user)))
                break
            if not has_room():
                return placed
        # else: the user has nothing more that fits in this pass; they leave the heap
    return placed


def _sort_key(user):
    """Heap key of a user name: comparable also when a (legacy) batch has no username."""
    return ('' if user is None else str(user), user)
