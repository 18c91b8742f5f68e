"""Cluster benchmarks on real engines: the agency against plain docker SDK calls, and the work it costs per batch.

makespan  N trivial batches (`python3 -c pass` under the agent) on 3 engines through the agency (POST /red until the
          last batch is terminal) vs. the same containers (same image, agent, job archive, memory limit, network)
          created, started, waited for and removed directly with the docker SDK, at the same parallelism: the
          nodes' RAM holds PER_NODE batches each, the direct run uses PER_NODE threads per engine.
          Goal: makespan ratio <= 1.15.
work      40 download-compute-upload batches (the end-to-end test RED: red-connector-http from a loopback file
          server, a Python command, an upload) on one node. Reports the wall time (goal <= 19 s), the CPU spent
          inside the containers per batch (the engine's cgroup parent, cpuacct; goal <= 0.7 CPU-s) and the
          controller's CPU per batch (/proc/PID/stat; goal <= 30 ms).

    python3 benchmarks/bench_cluster.py [makespan|work|all] [--batches 200] [--per-node 4] [--rounds 2]
"""
import argparse
import concurrent.futures
import os
import queue
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bson import ObjectId  # noqa: E402

from cc_agency.controller import jobs  # noqa: E402
from tests import reds  # noqa: E402
from tests.integration.cluster import command_red, nodes_of  # noqa: E402
from localcluster import FileServer, MongoServer, load_images_into, start_engines, stop_engines  # noqa: E402
from localcluster.agency import Agency, agency_config  # noqa: E402

TERMINAL = ('succeeded', 'failed', 'cancelled')
CLOCK_TICKS = os.sysconf('SC_CLK_TCK')


def process_cpu_s(pid):
    with open('/proc/{}/stat'.format(pid)) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime of all threads


def containers_cpu_s(engines):
    """CPU seconds used so far by every container of these engines (their cgroup parents keep what ended)."""
    total = 0
    for engine in engines:
        v1 = '/sys/fs/cgroup/cpuacct{}/cpuacct.usage'.format(engine.cgroup_parent)
        v2 = '/sys/fs/cgroup{}/cpu.stat'.format(engine.cgroup_parent)
        if os.path.exists(v1):
            with open(v1) as f:
                total += int(f.read()) / 1e9
        elif os.path.exists(v2):
            with open(v2) as f:
                total += int(dict(line.split() for line in f)['usage_usec']) / 1e6
    return total


def wait_all_terminal(db, experiment_id, count, timeout=600):
    """Wait until every batch is terminal; returns when the last one got there (from the batches' history, so
    that this poll can be rare and cost the database, which shares the CPU, next to nothing)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(1)
        if db.batches.count_documents({'experimentId': experiment_id, 'state': {'$in': list(TERMINAL)}}) >= count:
            return max(batch['history'][-1]['time'] for batch in db.batches.find(
                {'experimentId': experiment_id}, {'history': {'$slice': -1}}))
    raise RuntimeError('batches not terminal after {} s'.format(timeout))


def run_agency(mongo, nodes, red, count):
    """Submit `red` to a fresh agency; returns (makespan_s, controller_cpu_s, states). Prints the CPU that the
    database server and the broker spent meanwhile (SecantusDB is a Python server: much more than MongoDB)."""
    conf = agency_config(mongo, 'bench_' + uuid.uuid4().hex[:8], nodes)
    with Agency(conf) as agency:
        agency.create_user('bench', 'bench-pw')
        session = agency.session('bench', 'bench-pw')
        deadline = time.time() + 30
        while sum(1 for n in session.get(agency.url + '/nodes').json() if n.get('state') == 'online') < len(nodes):
            if time.time() > deadline:
                raise RuntimeError('nodes did not come online')
            time.sleep(0.1)
        client = mongo.client()
        db = client[conf['mongo']['db']]
        cpu_before = process_cpu_s(agency.controller.pid)
        others_before = process_cpu_s(mongo.pid), process_cpu_s(agency.broker.pid)
        t0 = time.time()  # the clock of the batches' history
        response = session.post(agency.url + '/red', json=red)
        response.raise_for_status()
        experiment_id = response.json()['experimentId']
        makespan = wait_all_terminal(db, experiment_id, count) - t0
        controller_cpu = process_cpu_s(agency.controller.pid) - cpu_before
        database_cpu = process_cpu_s(mongo.pid) - others_before[0]
        broker_cpu = process_cpu_s(agency.broker.pid) - others_before[1]
        print('    (meanwhile per batch: controller {:.1f} ms, database server {:.1f} ms, broker {:.1f} ms CPU)'.format(
            1000 * controller_cpu / count, 1000 * database_cpu / count, 1000 * broker_cpu / count))
        states = {}
        for batch in db.batches.find({'experimentId': experiment_id}, {'state': 1}):
            states[batch['state']] = states.get(batch['state'], 0) + 1
        client.close()
    return makespan, controller_cpu, states


def run_direct(engines, red, ram_mib, per_node, network='none'):
    """The same containers as the agency runs, straight through the docker SDK: per_node threads per engine."""
    experiment = {'cli': red['cli'], 'container': red['container']}
    agent = jobs.read_agent_source()
    work = queue.Queue()
    for batch in red['batches']:
        work.put(batch)
    clients = {engine.name: engine.client() for engine in engines}
    failures = []

    def worker(engine_name):
        api = clients[engine_name].api
        while True:
            try:
                batch = work.get_nowait()
            except queue.Empty:
                return
            batch_id = ObjectId()
            job = jobs.job_file(dict(batch, _id=batch_id), experiment, validate_connectors=False)
            container = api.create_container(
                red['container']['settings']['image']['url'], entrypoint=jobs.ENTRYPOINT, command=[],
                labels={'bench': '1'}, environment={'NVIDIA_VISIBLE_DEVICES': 'void'},
                host_config=api.create_host_config(mem_limit='{}m'.format(ram_mib),
                                                   memswap_limit='{}m'.format(ram_mib), network_mode=network,
                                                   security_opt=['no-new-privileges']))['Id']
            api.put_archive(container, '/', jobs.container_archive(job, agent))
            api.start(container)
            api.wait(container)
            api.inspect_container(container)
            result = jobs.parse_agent_result(api.logs(container, stdout=True, stderr=False))
            api.logs(container, stdout=False, stderr=True)
            if not result or result['state'] != 'succeeded':
                failures.append(result)
            api.remove_container(container, force=True)

    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(len(engines) * per_node) as pool:
        for future in [pool.submit(worker, engine.name) for engine in engines for _ in range(per_node)]:
            future.result()
    makespan = time.perf_counter() - t0
    for client in clients.values():
        client.close()
    return makespan, failures


def bench_makespan(mongo, engines, count, per_node, rounds):
    node_ram = min(engine.info()['MemTotal'] // (1024 * 1024) for engine in engines)
    ram = node_ram // per_node - 64  # the nodes' RAM holds per_node batches each
    red = command_red(['pass'] * count, ram=ram)
    print('makespan of {} trivial batches on {} engines, {} at a time per engine (load average before: {}):'.format(
        count, len(engines), per_node, os.getloadavg()[0]))
    direct_total = agency_total = cpu_total = 0
    for round_number in range(1, rounds + 1):  # alternated, so that other load on the machine hits both alike
        direct_s, failures = run_direct(engines, red, ram, per_node)
        assert not failures, failures[:3]
        agency_s, controller_cpu, states = run_agency(mongo, nodes_of(engines), red, count)
        assert states == {'succeeded': count}, states
        print('  round {}: docker SDK directly {:6.2f} s ({:.1f} batches/s), through the agency {:6.2f} s '
              '({:.1f} batches/s), ratio {:.3f}'.format(round_number, direct_s, count / direct_s, agency_s,
                                                        count / agency_s, agency_s / direct_s))
        direct_total, agency_total, cpu_total = direct_total + direct_s, agency_total + agency_s, cpu_total + controller_cpu
    print('  ratio agency/direct  {:6.3f}   (goal <= 1.15)'.format(agency_total / direct_total))
    print('  controller CPU       {:6.1f} ms per batch (goal <= 30)'.format(1000 * cpu_total / (count * rounds)))


def bench_work(mongo, engines, files, count=40):
    engine = engines[0]
    batches = []
    for i in range(count):
        files.add('/files/w{}.txt'.format(i), b'x' * 1000)
        batches.append(reds.batch(files.base_url, name='w{}.txt'.format(i), out='w{}.out'.format(i)))
    red = reds.red(batches)
    cpu_before = containers_cpu_s([engine])
    wall, controller_cpu, states = run_agency(mongo, {'node1': {'base_url': engine.base_url, 'network': 'host'}},
                                              red, count)
    container_cpu = containers_cpu_s([engine]) - cpu_before
    assert states == {'succeeded': count}, states
    print('{} download-compute-upload batches on one node (load average before: {}):'.format(count,
                                                                                          os.getloadavg()[0]))
    print('  wall time            {:6.2f} s    (goal <= 19 s)'.format(wall))
    print('  CPU in containers    {:6.3f} s per batch (agent + connectors; goal <= 0.7)'.format(container_cpu / count))
    print('  controller CPU       {:6.1f} ms per batch (goal <= 30)'.format(1000 * controller_cpu / count))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('what', nargs='?', default='all', choices=['makespan', 'work', 'all'])
    parser.add_argument('--batches', type=int, default=200)
    parser.add_argument('--per-node', type=int, default=4)
    parser.add_argument('--rounds', type=int, default=2)
    args = parser.parse_args()
    with MongoServer() as mongo, FileServer() as files:
        engines = start_engines(3)
        try:
            load_images_into(engines)
            if args.what in ('makespan', 'all'):
                bench_makespan(mongo, engines, args.batches, args.per_node, args.rounds)
            if args.what in ('work', 'all'):
                bench_work(mongo, engines, files)
        finally:
            stop_engines(engines)


if __name__ == '__main__':
    main()
