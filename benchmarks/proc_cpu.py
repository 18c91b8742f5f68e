"""CPU seconds from /proc, for benchmarks that compare what two programs cost on one machine.

Two views, both read before and after a piece of work and subtracted:

- the whole machine: the busy fields of the first line of /proc/stat (user, nice, system, irq, softirq, steal;
  not idle, not iowait), in CPU-seconds. Everything running counts, other people's work included, so it is only
  comparable between runs taken back to back on the same machine;
- a process tree: utime + stime + cutime + cstime of a root PID and of every live descendant (/proc/<pid>/stat).
  A child that was alive at the first reading and reaped before the second moves from its own utime to its
  parent's cutime, so nothing is counted twice or lost; a child that was re-parented to init (a double fork, as
  containerd's shims do) leaves the tree, and what it spent afterwards is not counted.
"""
import os

CLOCK_TICKS_PER_S = os.sysconf('SC_CLK_TCK')
# /proc/stat cpu line: user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user)
BUSY_FIELDS = (0, 1, 2, 5, 6, 7)


def machine_busy_s(stat_text=None):
    """Busy CPU-seconds of all CPUs since boot (from the text of /proc/stat, read now when not given)."""
    if stat_text is None:
        with open('/proc/stat') as f:
            stat_text = f.read()
    line = stat_text.splitlines()[0]
    fields = line.split()
    if fields[0] != 'cpu':
        raise ValueError('first line of /proc/stat is not the cpu total: {!r}'.format(line))
    ticks = [int(v) for v in fields[1:]]
    return sum(ticks[i] for i in BUSY_FIELDS if i < len(ticks)) / CLOCK_TICKS_PER_S


def parse_stat(text):
    """(parent pid, own CPU-s, reaped children's CPU-s) from the text of /proc/<pid>/stat. The command name is in
    parentheses and may contain spaces or parentheses, so the fields are counted from the last ')'."""
    fields = text.rsplit(')', 1)[1].split()
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return int(fields[1]), (utime + stime) / CLOCK_TICKS_PER_S, (cutime + cstime) / CLOCK_TICKS_PER_S


def snapshot():
    """{pid: (ppid, own_s, children_s)} of every process readable now."""
    processes = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open('/proc/{}/stat'.format(entry)) as f:
                    processes[int(entry)] = parse_stat(f.read())
            except (OSError, IndexError, ValueError):  # gone meanwhile
                pass
    return processes


def tree_cpu_s(root_pid, processes=None):
    """CPU-seconds of root_pid and its live descendants, including what their reaped children spent."""
    processes = snapshot() if processes is None else processes
    children = {}
    for pid, (ppid, _own, _reaped) in processes.items():
        children.setdefault(ppid, []).append(pid)
    total, pending = 0.0, [root_pid]
    while pending:
        pid = pending.pop()
        if pid in processes:
            _ppid, own, reaped = processes[pid]
            total += own + reaped
            pending.extend(children.get(pid, ()))
    return total


class CpuMeter:
    """CPU spent between `start()` and `stop()`: the machine's and that of named process trees.

    `roots` maps a name to a root PID, or to a list of root PIDs whose trees are added up (e.g. two uwsgi
    servers). `stop()` returns {'machine': s, name: s, ...}.
    """

    def __init__(self, roots):
        self.roots = {name: pids if isinstance(pids, (list, tuple)) else [pids] for name, pids in roots.items()}
        self._before = None

    def _read(self):
        processes = snapshot()
        figures = {name: sum(tree_cpu_s(pid, processes) for pid in pids if pid) for name, pids in self.roots.items()}
        figures['machine'] = machine_busy_s()
        return figures

    def start(self):
        self._before = self._read()
        return self

    def stop(self):
        after = self._read()
        return {name: after[name] - self._before[name] for name in after}
