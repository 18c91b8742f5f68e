"""Submit-to-succeeded latency of one batch of the end-to-end test RED (issue goal: <= 1 s on an idle 2-core machine).

Starts its own services (SecantusDB, one dockerd, an HTTP file server, controller and broker processes), submits
one single-batch experiment at a time and times POST /red until the batch reads `succeeded` (polled every 10 ms
with a token). Also prints where the time goes, from the batch's own history.

    python3 benchmarks/bench_latency.py [--runs 10]
"""
import argparse
import os
import statistics
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests import reds  # noqa: E402
from localcluster import DockerEngine, FileServer, MongoServer, load_images_into  # noqa: E402
from localcluster.agency import Agency, agency_config  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--runs', type=int, default=10)
    args = parser.parse_args()
    with MongoServer() as mongo, FileServer() as files:
        engine = DockerEngine(name='bench')
        engine.start()
        try:
            load_images_into([engine])
            conf = agency_config(mongo, 'bench_' + uuid.uuid4().hex[:8],
                                 {'node1': {'base_url': engine.base_url, 'network': 'host'}})
            with Agency(conf) as agency:
                agency.create_user('bench', 'bench-pw')
                session = agency.session('bench', 'bench-pw')
                files.add('/files/in.txt', b'hello ')
                red = reds.red([reds.batch(files.base_url, name='in.txt', out='out.txt')])
                time.sleep(3)  # let the controller find its node
                totals, phases = [], []
                for run in range(args.runs + 1):
                    t0 = time.perf_counter()
                    experiment_id = session.post(agency.url + '/red', json=red).json()['experimentId']
                    while True:
                        batches = session.get(agency.url + '/batches', params={'experimentId': experiment_id}).json()
                        if batches and batches[0]['state'] in ('succeeded', 'failed'):
                            break
                        time.sleep(0.01)
                    total = time.perf_counter() - t0
                    batch = session.get(agency.url + '/batches/' + batches[0]['_id']).json()
                    assert batch['state'] == 'succeeded', batch['history'][-1]
                    history = {h['state']: h['time'] for h in batch['history']}
                    if run:  # the first run warms the caches (image inspected once per node)
                        totals.append(total)
                        phases.append((history['scheduled'] - history['registered'],
                                       history['processing'] - history['scheduled'],
                                       history['succeeded'] - history['processing']))
                print('submit -> succeeded, {} runs: median {:.3f} s, min {:.3f} s, max {:.3f} s'.format(
                    len(totals), statistics.median(totals), min(totals), max(totals)))
                for name, index in (('registered -> scheduled', 0), ('scheduled -> processing (create, copy, start)', 1),
                                    ('processing -> succeeded (agent, connectors, command, record)', 2)):
                    print('  {:<62} median {:.3f} s'.format(name, statistics.median(p[index] for p in phases)))
        finally:
            engine.stop(remove=True)


if __name__ == '__main__':
    main()
