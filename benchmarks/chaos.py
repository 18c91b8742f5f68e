"""Chaos run (by hand, bounded in time): 300 batches while engines die and come back, the controller is killed
twice and the database restarts once. Prints terminal / lost / double-run counts (goal: 300/300, 0, 0).

Ground truth for double runs comes from the batches themselves: each run of a command reports its start,
heartbeats and end to a run-log HTTP server on loopback; two runs of one batch alive at the same time are a
double run.

    python3 benchmarks/chaos.py [--batches 300] [--timeout 600]
"""
import argparse
import collections
import http.server
import os
import sys
import threading
import time
import uuid

import pymongo

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests import reds  # noqa: E402
from localcluster import DockerEngine, FileServer, MongoServer, load_images_into, stop_engines  # noqa: E402
from localcluster.agency import Agency, agency_config  # noqa: E402

# reports its start, a heartbeat every 0.25 s and its end to the run log (as /<batch>/<run>/<event>), then writes
# its output
SCRIPT = (
    "import os, sys, time, urllib.request; a = sys.argv[1:]; run = a[2] + '/' + os.urandom(6).hex(); "
    "post = lambda what: urllib.request.urlopen(run + '/' + what, data=b'', timeout=10); "
    "post('start'); [(time.sleep(0.25), post('beat')) for _ in range(6)]; "
    "open('result.txt', 'w').write(open(a[0]).read()); post('end')"
)
BEAT_S = 0.25


class RunLog(http.server.ThreadingHTTPServer):
    """POST /<batch>/<run>/<event>: the time span of every run of every batch, from its first to its last event."""

    def __init__(self):
        self.spans = collections.defaultdict(dict)  # batch key -> run -> [first, last]
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                _, key, run, _event = self.path.split('/')
                when = time.time()
                with server.lock:
                    span = server.spans[key].setdefault(run, [when, when])
                    span[1] = when
                self.send_response(200)
                self.send_header('Content-Length', '0')
                self.end_headers()

        super().__init__(('127.0.0.1', 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def double_runs(self):
        """Batch keys two of whose runs were alive at the same time.

        A run is alive from its first to its last event; a run killed from outside stops sending, so it counts as
        alive up to one heartbeat after its last event. Runs one after the other (a retry) are not double runs.
        """
        doubles = []
        with self.lock:
            for key, spans in self.spans.items():
                alive_until = None
                for first, last in sorted(spans.values()):
                    if alive_until is not None and first < alive_until:
                        doubles.append(key)
                        break
                    alive_until = max(alive_until or 0, last + BEAT_S)
        return doubles


def explain_double_runs(run_log, mongo, db_name, experiment_id, log_url, t0):
    """For each double run: when its runs started and ended, and the batch's history (to find the cause)."""
    client = pymongo.MongoClient(mongo.uri)
    try:
        for key in run_log.double_runs():
            word = '{}/{}'.format(log_url, key)
            batch = next(b for b in client[db_name]['batches'].find({'experimentId': experiment_id})
                         if word in repr(b['inputs']))
            print('double run of batch {} (key {}):'.format(batch['_id'], key))
            for first, last in sorted(run_log.spans[key].values()):
                print('    {:7.2f} s  run alive until {:.2f} s'.format(first - t0, last - t0))
            for entry in batch['history']:
                print('    {:7.2f} s  {:<10} node={} {}'.format(entry['time'] - t0, entry['state'], entry.get('node'),
                                                              (entry.get('debugInfo') or [''])[0][:160]))
    finally:
        client.close()


def restart(engine):
    """Start a killed engine again; its old containerd may still hold the socket for a few seconds."""
    for attempt in range(5):
        try:
            return engine.start()
        except Exception as e:
            print('         engine start failed ({}), retrying'.format(str(e).splitlines()[0]), flush=True)
            time.sleep(2)
    raise RuntimeError('engine {} did not come back'.format(engine.name))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--batches', type=int, default=300)
    parser.add_argument('--timeout', type=int, default=600)
    args = parser.parse_args()
    run_log = RunLog()
    log_url = 'http://127.0.0.1:{}'.format(run_log.server_address[1])
    engines = [DockerEngine(name='chaos1', extra_args=['--live-restore']),
               DockerEngine(name='chaos2', extra_args=['--live-restore']),
               DockerEngine(name='chaos3')]
    with MongoServer() as mongo, FileServer() as files:
        try:
            for engine in engines:
                engine.start()
            load_images_into(engines)
            nodes = {'node{}'.format(i + 1): {'base_url': e.base_url, 'network': 'host'} for i, e in enumerate(engines)}
            conf = agency_config(mongo, 'chaos_' + uuid.uuid4().hex[:8], nodes, attempts_to_fail=5)
            with Agency(conf) as agency:
                agency.create_user('chaos', 'chaos-pw')
                session = agency.session('chaos', 'chaos-pw')
                files.add('/files/in.txt', b'chaos')
                batches = [reds.batch(files.base_url, name='in.txt', out='{}.out'.format(i), script=SCRIPT,
                                      word='{}/{}'.format(log_url, i)) for i in range(args.batches)]
                t0 = time.time()
                experiment_id = session.post(agency.url + '/red', json=reds.red(batches)).json()['experimentId']

                def at(seconds, what, action):
                    time.sleep(max(0, t0 + seconds - time.time()))
                    print('{:6.1f} s  {}'.format(time.time() - t0, what), flush=True)
                    action()

                at(5, 'kill -9 engine node1', engines[0].kill)
                at(10, 'restart engine node1', lambda: restart(engines[0]))
                at(15, 'kill -9 controller', lambda: agency.stop_controller(kill=True))
                at(18, 'restart controller', agency.start_controller)
                at(25, 'hang engine node2 (SIGSTOP)', engines[1].pause)
                at(32, 'resume engine node2', engines[1].resume)
                at(35, 'stop database', mongo.stop)
                at(40, 'start database', mongo.start)
                at(45, 'kill -9 controller', lambda: agency.stop_controller(kill=True))
                at(47, 'restart controller', agency.start_controller)
                at(50, 'kill -9 engine node3 (no live-restore: its containers die on restart)', engines[2].kill)
                at(55, 'restart engine node3', lambda: restart(engines[2]))

                session = agency.session('chaos', 'chaos-pw')
                deadline = t0 + args.timeout
                while time.time() < deadline:
                    try:
                        count = session.get(agency.url + '/batches/count', params={
                            'experimentId': experiment_id, 'state': 'registered'}, timeout=10).json()['count']
                        active = sum(session.get(agency.url + '/batches/count', params={
                            'experimentId': experiment_id, 'state': s}, timeout=10).json()['count']
                            for s in ('scheduled', 'processing'))
                    except Exception:
                        count = active = -1
                    if count == 0 and active == 0:
                        break
                    time.sleep(1)
                elapsed = time.time() - t0
                states = collections.Counter()
                attempts = collections.Counter()
                for skip in range(0, args.batches, 1000):
                    for batch in session.get(agency.url + '/batches', params={
                            'experimentId': experiment_id, 'limit': 1000, 'skip': skip}).json():
                        states[batch['state']] += 1
                        attempts[batch['attempts']] += 1
                terminal = states['succeeded'] + states['failed'] + states['cancelled']
                uploads = sum(1 for i in range(args.batches) if files.uploaded('/uploads/{}.out'.format(i)))
                print('elapsed {:.1f} s'.format(elapsed))
                print('terminal {}/{} (succeeded {}, failed {}), lost {}, double runs {}'.format(
                    terminal, args.batches, states['succeeded'], states['failed'], args.batches - terminal,
                    len(run_log.double_runs())))
                print('attempts per batch: {}'.format(dict(sorted(attempts.items()))))
                print('outputs uploaded: {}/{}'.format(uploads, args.batches))
                explain_double_runs(run_log, mongo, conf['mongo']['db'], experiment_id, log_url, t0)
                print('controller log: {}'.format(os.path.join(agency.work_dir, 'controller.log')))
        finally:
            for engine in engines:
                engine.resume()
            stop_engines(engines)


if __name__ == '__main__':
    main()
