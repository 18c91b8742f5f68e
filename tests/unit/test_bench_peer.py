"""The pure parts of the side-by-side benchmark (benchmarks/bench_peer.py): CPU readings from /proc text, the image
without package bytecode, the comparison table and its goals, the controller's scheduling-pass lines."""
import io
import os
import tarfile
import time

import pytest

from benchmarks import bench_peer, peer_image, proc_cpu

TICKS = proc_cpu.CLOCK_TICKS_PER_S


def stat_line(pid, comm, ppid, utime, stime, cutime=0, cstime=0):
    """A /proc/<pid>/stat line with the fields that matter set (ticks)."""
    rest = ['S', str(ppid)] + ['0'] * 9 + [str(utime), str(stime), str(cutime), str(cstime)] + ['0'] * 30
    return '{} ({}) {}'.format(pid, comm, ' '.join(rest))


def test_parse_stat_counts_fields_after_a_command_name_with_spaces_and_parentheses():
    ppid, own_s, reaped_s = proc_cpu.parse_stat(stat_line(42, 'uwsgi (worker 2)', 7, 3 * TICKS, TICKS, TICKS, 0))
    assert (ppid, own_s, reaped_s) == (7, 4.0, 1.0)


def test_machine_busy_counts_user_nice_system_irq_softirq_steal_not_idle_or_iowait():
    #           user nice system idle iowait irq softirq steal guest guest_nice
    text = 'cpu  {} {} {} 900000 700000 {} {} {} 55 0\ncpu0 1 2 3 4 5 6 7 8 9 0\n'.format(
        *(n * TICKS for n in (10, 1, 5, 2, 3, 4)))
    assert proc_cpu.machine_busy_s(text) == 25.0


def test_machine_busy_refuses_a_file_that_does_not_start_with_the_cpu_total():
    with pytest.raises(ValueError):
        proc_cpu.machine_busy_s('intr 1 2 3\n')


def test_tree_cpu_adds_the_root_its_live_descendants_and_what_they_reaped_but_not_other_processes():
    processes = {
        100: (1, 2.0, 0.5),    # root (e.g. dockerd), reaped children spent 0.5 s
        101: (100, 1.0, 0.0),  # child (containerd)
        102: (101, 0.25, 0.25),  # grandchild
        200: (1, 50.0, 9.0),   # someone else's process
        201: (200, 7.0, 0.0),
    }
    assert proc_cpu.tree_cpu_s(100, processes) == 4.0
    assert proc_cpu.tree_cpu_s(101, processes) == 1.5
    assert proc_cpu.tree_cpu_s(999, processes) == 0  # gone: nothing


def test_cpu_meter_reports_what_a_tree_and_the_machine_spent_meanwhile():
    meter = proc_cpu.CpuMeter({'me': [os.getpid()], 'nobody': []}).start()
    started = time.process_time()
    while time.process_time() - started < 0.3:  # 0.3 CPU-s in this process
        pass
    spent = meter.stop()
    assert 0.25 <= spent['me'] < 5 and spent['nobody'] == 0
    assert spent['machine'] >= spent['me'] - 0.02


@pytest.mark.parametrize('name, expected', [
    (peer_image.DIST_PACKAGES + '/requests/__pycache__/api.cpython-311.pyc', True),
    (peer_image.DIST_PACKAGES + '/requests/__pycache__', True),
    (peer_image.DIST_PACKAGES + '/requests/api.py', False),
    (peer_image.DIST_PACKAGES + '/six.py', False),
    ('usr/lib/python3.11/__pycache__/os.cpython-311.pyc', False),  # the standard library keeps its bytecode
    ('./' + peer_image.DIST_PACKAGES + '/x/__pycache__/y.cpython-311.pyc', True),
])
def test_only_the_packages_bytecode_is_left_out(name, expected):
    assert peer_image.is_package_bytecode(name) is expected


def test_without_package_bytecode_copies_every_other_member_with_its_content(tmp_path):
    source, target = str(tmp_path / 'in.tar'), str(tmp_path / 'out.tar')
    members = {peer_image.DIST_PACKAGES + '/m.py': b'x = 1\n',
               peer_image.DIST_PACKAGES + '/__pycache__/m.cpython-311.pyc': b'\x00bytecode',
               'usr/lib/python3.11/__pycache__/os.cpython-311.pyc': b'\x00stdlib'}
    with tarfile.open(source, 'w') as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert peer_image.without_package_bytecode(source, target) == 1
    with tarfile.open(target) as tar:
        kept = {m.name: tar.extractfile(m).read() for m in tar}
    assert kept == {name: data for name, data in members.items() if 'm.cpython' not in name}


def test_goals_are_checked_in_their_direction():
    assert bench_peer.goal_met(0.5, '<=', 0.5) and not bench_peer.goal_met(0.51, '<=', 0.5)
    assert bench_peer.goal_met(2.0, '>=', 2) and not bench_peer.goal_met(1.9, '>=', 2)
    assert bench_peer.goal_met(7, None, None) is None


def test_table_has_every_row_with_this_over_peer_as_ratio_and_the_goal_verdict():
    peer = {'latency_s': 2.0, 'makespan_s': 30.0, 'machine_cpu_s': 50.0, 'controller_cpu_s': 2.0,
            'basic_rps': 25.0, 'token_rps': 500.0, 'root_rps': 4000.0}
    this = {'latency_s': 0.8, 'makespan_s': 20.0, 'machine_cpu_s': 25.0, 'controller_cpu_s': 0.5,
            'basic_rps': 60.0, 'token_rps': 600.0, 'root_rps': 3000.0}
    lines = bench_peer.table(peer, this, runs=3, batches=40)
    assert lines[0] == '| work | cc-agency 9.3.0 | this project | ratio | goal |'
    rows = {line.split(' | ')[0].lstrip('| '): line.split(' | ')[1:] for line in lines[2:]}
    assert len(rows) == 7
    assert rows['1 batch, POST /red -> succeeded (median of 3)'] == ['2.00 s', '0.80 s', '0.40', '<= 0.5 met |']
    assert rows['40 batches, one node, makespan'][2:] == ['0.67', '<= 0.6 NOT met |']
    assert rows['GET /batches/<id>, HTTP Basic, 1 client'][2:] == ['2.40', '>= 2 met |']
    assert rows['GET /batches/<id>, token (9.3: JWT Bearer)'][2:] == ['1.20', '>= 1.5 NOT met |']
    assert rows['GET / without auth'] == ['4,000 req/s', '3,000 req/s', '0.75', '- |']


def test_scheduling_pass_lines_are_read_from_the_controller_log():
    log = ('2026-12-01 10:00:00,001 DEBUG cc_agency.controller.scheduler: scheduling pass: 3 scheduled in 12.5 ms\n'
           '2026-12-01 10:00:00,002 INFO cc_agency.controller.runner: batch x succeeded\n'
           '2026-12-01 10:00:01,000 DEBUG cc_agency.controller.scheduler: scheduling pass: 0 scheduled in 840.0 ms\n')
    assert bench_peer.pass_durations_ms(log) == [(3, 12.5), (0, 840.0)]
    assert bench_peer.describe_passes(bench_peer.pass_durations_ms(log)).startswith('2 passes, median 426.2 ms')


def test_queue_table_has_a_column_per_queue_length():
    figures = {'idle_latency_s': 1.0, 'loaded_latency_s': 1.5, 'count_ms': 20.0, 'list_ms': 30.0,
               'post_total_s': 1.5, 'registered_s': 2.0, 'register_rate': 500.0, 'passes': [(1, 10.0)]}
    big = dict(figures, loaded_latency_s=None, count_ms=1234.0, passes=[(0, 900.0), (2, 1100.0)], failed_passes=4)
    lines = bench_peer.queue_table(1000, 100000, dict(figures, failed_passes=0), big)
    assert lines[0] == '| work | 1,000 queued | 100,000 queued |'
    assert '| the same with the queue | 1.50 s | not succeeded in time |' in lines
    assert lines[-1] == '| rounds failed meanwhile (database unreachable) | 0 | 4 |'
    assert '| GET /batches/count?state=registered (admin) | 20 ms | 1,234 ms |' in lines
    assert lines[-2] == ('| scheduling pass | 1 passes, median 10.0 ms, max 10.0 ms (1 scheduled) | '
                         '2 passes, median 1000.0 ms, max 1100.0 ms (2 scheduled) |')
