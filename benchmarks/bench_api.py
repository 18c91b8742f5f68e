"""Broker API throughput and latency, with the broker under uwsgi as the seed deploys it (2 processes by default,
as cc-agency 9.3 was measured; `--processes`).

Measures, on loopback, against SecantusDB (the MongoDB-wire server of the tests; see the note below):
  1. requests/s of GET /batches/<id> with ApacheBench (`ab`, Debian package apache2-utils):
     a. one client (`ab -c 1`), side by side with cc-agency 9.3 (benchmarks/README.md): a token (Bearer; verified
        tokens are cached per process for a few seconds) -- goal >= 1.5 x 578 req/s -- and HTTP Basic with the same
        password again and again (bcrypt, the seed's default cost of 12 rounds, once per process and minute, then
        the password cache) -- goal >= 2 x 26.8 req/s;
     b. `--concurrency` clients: Bearer, the token as Basic password, and Basic with a new password per call
        (every call a bcrypt check: the cost the caches save);
  2. POST /red with one experiment of 10,000 batches (goal: answered in < 2 s), where its time goes, and how long
     the controller's registrar then takes to insert the batch documents (cc_agency/registration.py);
  3. GET /batches?limit=100 with 100,000 batches in the database (goal: < 50 ms median), without and with filters.

uwsgi: Debian's `uwsgi` + `uwsgi-plugin-python3` embed Debian's /usr/bin/python3 (3.11), so the broker runs from a
venv made with that interpreter and `pip install <repo>` (the seed's install steps); the ini is the seed's
(plugins, socket, wsgi-file, processes, lazy-apps, virtualenv from $VIRTUAL_ENV) plus an http-socket on
127.0.0.1 for ab.

    python3 benchmarks/bench_api.py [--venv DIR] [--processes 2] [--token-requests 3000] [--basic-requests 60]
                                    [--list-batches 100000]

Note: SecantusDB is a Python query layer over WiredTiger. Inserting costs it about 90 us per document plus about
55 us per document and secondary index (it reads its index catalogue again for every document), which is why
POST /red stages the batches in chunks of 1,000 (one document each) and leaves their insertion to the registrar;
and it reads every document a query matches before it applies the limit, which is why lists are read by ranges
of sequence numbers (cc_agency/seq_order.py).
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import requests  # noqa: E402
from bson import ObjectId  # noqa: E402

from cc_agency import auth, registration  # noqa: E402
from cc_agency.db import allocate_seq  # noqa: E402
from cc_agency.registration import new_batch  # noqa: E402
from cc_agency.red import parse_red  # noqa: E402
from tests import reds  # noqa: E402
from localcluster import MongoServer  # noqa: E402
from localcluster.agency import agency_config  # noqa: E402
from localcluster.broker import UwsgiBroker, make_uwsgi_venv  # noqa: E402

PASSWORD = 'bench-password'


def ab(url, requests_n, concurrency, auth_args):
    """Requests/s and the median time per request (ms) from ApacheBench; every answer must be a 200."""
    result = subprocess.run(['ab', '-q', '-n', str(requests_n), '-c', str(concurrency)] + auth_args + [url],
                            capture_output=True, text=True, timeout=900)
    out = result.stdout
    if result.returncode != 0 or re.search(r'Non-2xx responses:\s+\d+', out) or \
            int(re.search(r'Failed requests:\s+(\d+)', out).group(1)):
        raise RuntimeError('ab saw failures:\n' + out + result.stderr)
    rate = float(re.search(r'Requests per second:\s+([\d.]+)', out).group(1))
    median_ms = float(re.search(r'\n\s+50%\s+(\d+)', out).group(1))
    return rate, median_ms


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--venv', help='reuse this uwsgi venv (default: make one in a temporary directory)')
    parser.add_argument('--token-requests', type=int, default=3000)
    parser.add_argument('--basic-requests', type=int, default=60)
    parser.add_argument('--concurrency', type=int, default=8)
    parser.add_argument('--processes', type=int, default=2)
    parser.add_argument('--skip-red-and-lists', action='store_true', help='only the requests/s of part 1')
    parser.add_argument('--red-batches', type=int, default=10000)
    parser.add_argument('--red-runs', type=int, default=3)
    parser.add_argument('--list-batches', type=int, default=100000)
    parser.add_argument('--list-runs', type=int, default=7)
    args = parser.parse_args()

    venv = args.venv or os.path.join(tempfile.mkdtemp(prefix='cca-bench-'), 'ccagency-venv')
    t0 = time.perf_counter()
    make_uwsgi_venv(venv)
    print('uwsgi venv {} ready in {:.1f} s'.format(venv, time.perf_counter() - t0))

    with MongoServer() as mongo:
        conf = agency_config(mongo, 'bench_' + uuid.uuid4().hex[:8], {})
        del conf['broker']['auth']['bcrypt_rounds']  # the seed's configuration: bcrypt's default cost (12)
        db = mongo.client()[conf['mongo']['db']]
        broker = UwsgiBroker(conf, venv, processes=args.processes).start()
        try:
            run(args, broker, db)
        finally:
            broker.stop()


def run(args, broker, db):
    auth.create_or_update_user(db, 'bench', PASSWORD, True)  # rounds: the default, 12
    token = requests.get(broker.url + '/token', auth=('bench', PASSWORD), timeout=30).json()['token']
    bearer = {'Authorization': 'Bearer ' + token}
    response = requests.post(broker.url + '/red', json=reds.red_of(1), headers=bearer, timeout=60)
    experiment_id = response.json()['experimentId']
    batch_id = requests.get(broker.url + '/batches', params={'experimentId': experiment_id}, headers=bearer,
                            timeout=30).json()[0]['_id']
    url = '{}/batches/{}'.format(broker.url, batch_id)

    print('\n1. GET /batches/<id>, uwsgi {} processes'.format(args.processes))
    for _ in range(2):  # warm-up: every worker connected, caches filled
        ab(url, args.token_requests // 2, args.concurrency, ['-H', 'Authorization: Bearer ' + token])
    ab(url, args.basic_requests, 1, ['-A', 'bench:' + PASSWORD])
    one_token_rate, one_token_ms = ab(url, args.token_requests, 1, ['-H', 'Authorization: Bearer ' + token])
    one_basic_rate, one_basic_ms = ab(url, args.token_requests, 1, ['-A', 'bench:' + PASSWORD])
    liveness_rate, _ = ab(broker.url + '/', args.token_requests, 1, [])
    print('   a. one client (ab -c 1)')
    print('      GET / (no auth)          {:8.1f} req/s   (9.3: 4,057 req/s: how fast this machine is now)'.format(
        liveness_rate))
    print('      Bearer token             {:8.1f} req/s   median {:5.0f} ms   goal >= {:.0f} (1.5 x 578 of 9.3)'
          .format(one_token_rate, one_token_ms, 1.5 * 578))
    print('      Basic, same password     {:8.1f} req/s   median {:5.0f} ms   goal >= {:.1f} (2 x 26.8 of 9.3)'
          .format(one_basic_rate, one_basic_ms, 2 * 26.8))
    token_rate, token_ms = ab(url, args.token_requests, args.concurrency, ['-H', 'Authorization: Bearer ' + token])
    basic_token_rate, _ = ab(url, args.token_requests, args.concurrency, ['-A', 'bench:' + token])
    basic_rate, basic_ms = uncached_basic(url, db, args.basic_requests, args.concurrency)
    print('   b. {} clients (ab -c {}; the uncached Basic line: {} new users, {} at a time)'.format(
        args.concurrency, args.concurrency, args.basic_requests, args.concurrency))
    print('      Bearer token             {:8.1f} req/s   median {:5.0f} ms'.format(token_rate, token_ms))
    print('      token as Basic password  {:8.1f} req/s'.format(basic_token_rate))
    print('      Basic, bcrypt every call {:8.1f} req/s   median {:5.0f} ms'.format(basic_rate, basic_ms))
    print('      token / uncached Basic = {:.0f} x'.format(token_rate / basic_rate))
    if args.skip_red_and_lists:
        return

    print('\n2. POST /red, one experiment of {} batches'.format(args.red_batches))
    red = reds.red_of(args.red_batches)
    t0 = time.perf_counter()
    parse_red(red)
    parse_s = time.perf_counter() - t0
    post_s, register_s = [], []
    for _ in range(args.red_runs):
        t0 = time.perf_counter()
        response = requests.post(broker.url + '/red', json=red, headers=bearer, timeout=600)
        post_s.append(time.perf_counter() - t0)
        assert response.status_code == 200, response.text
        # what the controller's registrar does, here in this process and all at once (it inserts a chunk whenever
        # fewer than registration.LOOKAHEAD of the experiment's batches are queued)
        t0 = time.perf_counter()
        assert registration.register_pending(db, lookahead=args.red_batches + 1) == 1
        register_s.append(time.perf_counter() - t0)
        assert db['batches'].count_documents({'experimentId': response.json()['experimentId']}) == args.red_batches
    print('   answered in {} s (median {:.2f} s; goal < 2 s)'.format(
        ', '.join('{:.2f}'.format(s) for s in post_s), statistics.median(post_s)))
    print('   of which RED validation (red-val, cc_agency.red.parse_red) {:.2f} s in the broker process'.format(parse_s))
    print('   the registrar would insert all the batch documents in {} s (median {:.2f} s)'.format(
        ', '.join('{:.2f}'.format(s) for s in register_s), statistics.median(register_s)))

    print('\n3. GET /batches?limit=100 with {} batches in the database'.format(args.list_batches))
    newest_experiment = fill(db, args.list_batches)
    total = db['batches'].estimated_document_count()
    for name, params in (('admin, no filter', {}), ('admin, ascending', {'ascending': 'true'}),
                         ('state=registered', {'state': 'registered'}), ('username=bench', {'username': 'bench'}),
                         ('one experiment', {'experimentId': newest_experiment}),
                         ('skip half', {'skip': total // 2})):
        samples = []
        for _ in range(args.list_runs):
            t0 = time.perf_counter()
            response = requests.get(broker.url + '/batches', params=dict(params, limit=100), headers=bearer,
                                    timeout=600)
            samples.append(time.perf_counter() - t0)
            assert response.status_code == 200 and len(response.json()) == 100, response.text[:300]
        print('   {:18s} median {:7.1f} ms over {} calls ({} batches; goal < 50 ms)'.format(
            name, statistics.median(samples) * 1000, args.list_runs, total))


def uncached_basic(url, db, requests_n, concurrency):
    """Basic where no cache helps: `requests_n` users of bcrypt's default cost (12), each asking once, `concurrency`
    at a time, so every call is a bcrypt check. Returns (req/s, median ms)."""
    users = ['bench-basic-{}-{}'.format(uuid.uuid4().hex[:6], i) for i in range(requests_n)]
    for name in users:
        auth.create_or_update_user(db, name, PASSWORD, False)

    def one(name):
        started = time.perf_counter()
        response = requests.get(url, auth=(name, PASSWORD), timeout=120)
        assert response.status_code in (200, 404), response.text  # 404: the batch is the admin's, not theirs
        return time.perf_counter() - started
    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        samples = list(pool.map(one, users))
    return requests_n / (time.perf_counter() - t0), statistics.median(samples) * 1000


def fill(db, target):
    """Top the batches collection up to `target` documents as registration writes them (experiments of 10,000);
    returns the id of the newest experiment."""
    requirements = {'ramMiB': 256, 'gpuVramMiB': []}
    batch = reds.red_of(1)['batches'][0]
    experiment_id = None
    while True:
        missing = target - db['batches'].estimated_document_count()
        if missing <= 0:
            return experiment_id
        n = min(missing, 10000)
        experiment_id, first, registered = ObjectId(), allocate_seq(db, 'batches', n), time.time()
        db['experiments'].insert_one({'_id': experiment_id, 'username': 'bench', 'registrationTime': registered,
                                      'seq': allocate_seq(db, 'experiments'), 'batchSeq': first, 'batchCount': n,
                                      'registrationComplete': True})
        experiment_id = str(experiment_id)
        for start in range(0, n, 1000):
            db['batches'].insert_many([new_batch(experiment_id, first + i, 'bench', registered, batch, requirements)
                                       for i in range(start, min(n, start + 1000))], ordered=False)


if __name__ == '__main__':
    main()
