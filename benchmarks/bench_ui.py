"""The dashboard with a big experiment: how long its page takes with 100,000 batches (goal: rendered in < 1 s).

Fills a fresh database of SecantusDB with one experiment of N batches (default 100,000) written directly as
registration writes them, in a mix of states with histories (so the timeline has runs to draw), starts the broker
(`python -m cc_agency.broker.devserver`, as the tests do) and measures:
  1. the API calls the experiment page makes: GET /experiments/<id> (with `batchCounts`, one aggregation in
     cc_agency/batch_counts.py) and GET /batches?experimentId=...&limit=50&timeline=true; and the
     experiments list GET /experiments?limit=20;
  2. in headless chromium (Playwright, Debian's /usr/bin/chromium): from following a link to the experiment's page
     to its 50 batch rows and its timeline on screen, and to its counts by state (the page shows the rows first).

    python3 benchmarks/bench_ui.py [--batches 100000] [--runs 7] [--storage DIR]

`--storage DIR` keeps the database in DIR and reuses its experiment on the next run (filling 100,000 batches takes
SecantusDB minutes).

Env: CC_SECANTUSD (secantusd-py of the SecantusDB venv) as for the tests.
"""
import argparse
import os
import random
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import requests  # noqa: E402
from bson import ObjectId  # noqa: E402

from cc_agency import auth  # noqa: E402
from cc_agency.batch_counts import batch_counts, recount  # noqa: E402
from cc_agency.registration import new_batch  # noqa: E402
from cc_agency.db import allocate_seq, ensure_indexes  # noqa: E402
from tests import reds  # noqa: E402
from localcluster import MongoServer  # noqa: E402
from localcluster.agency import agency_config  # noqa: E402
from localcluster.broker import BrokerServer  # noqa: E402

PASSWORD = 'bench-ui-password'
PAGE_BATCHES = 50  # what the experiment page shows (cc_agency/broker/ui/static/views/experiment.js)
STATE_MIX = [('succeeded', 0.70), ('failed', 0.05), ('cancelled', 0.02), ('processing', 0.01),
             ('scheduled', 0.01), ('registered', 0.21)]
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync']


def ran(batch, state, start):
    """The batch as the controller leaves it in `state` after a run that started at `start` (seconds)."""
    batch['state'] = state
    if state == 'registered':
        return batch
    batch['node'], batch['attempts'] = 'node{}'.format(random.randint(1, 3)), 1
    entries = [('scheduled', start - 0.2)]
    if state != 'scheduled':
        entries.append(('processing', start))
    if state in ('succeeded', 'failed', 'cancelled'):
        entries.append((state, start + random.uniform(2, 30)))
    batch['history'] += [{'state': s, 'time': t, 'node': batch['node'], 'debugInfo': None, 'ccagent': None}
                         for s, t in entries]
    return batch


def fill(db, count):
    """One experiment of `count` batches, as registration writes them; returns its id."""
    random.seed(15)
    requirements = {'ramMiB': 256, 'gpuVramMiB': []}
    red = reds.red_of(1)
    job = red['batches'][0]
    experiment_id, first, registered = ObjectId(), allocate_seq(db, 'batches', count), time.time() - 3600
    db['experiments'].insert_one({
        '_id': experiment_id, 'username': 'bench', 'registrationTime': registered,
        'seq': allocate_seq(db, 'experiments'), 'batchSeq': first, 'batchCount': count, 'registrationComplete': True,
        'container': red['container'], 'requirements': requirements, 'redVersion': '9'})
    states = [state for state, _ in STATE_MIX]
    weights = [share for _, share in STATE_MIX]
    for start in range(0, count, 1000):
        db['batches'].insert_many([
            ran(new_batch(str(experiment_id), first + i, 'bench', registered, job, requirements),
                random.choices(states, weights)[0], registered + i * 0.03)
            for i in range(start, min(count, start + 1000))], ordered=False)
    recount(db, experiment_id)  # the counters the life cycle would have kept while the batches ran
    return str(experiment_id)


def timed_ms(call, runs):
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), min(times), max(times)


def browser_ms(url, experiment_id, runs, counts_wait_s):
    """(median, min, max) ms from following a link to the experiment's page (a hash route) to its batch rows and
    timeline on screen, and the same to its counts on screen (None when they took longer than counts_wait_s)."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path='/usr/bin/chromium', args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={'width': 1280, 'height': 900})
        page.goto(url + '/ui/')
        page.fill('input[name=username]', 'bench')
        page.fill('input[name=password]', PASSWORD)
        page.click('form.login button[type=submit]')
        times = []
        for _ in range(runs):
            # from another page of the dashboard (the experiments list waits for the counts of its experiments)
            page.goto(url + '/ui/#/nodes')
            page.locator('h1', has_text='Nodes').wait_for()
            rows_ms, counts_ms = page.evaluate('''([target, rows, waitMs]) => new Promise((resolve) => {
                const t0 = performance.now();
                let rowsAt = null;
                location.hash = target;
                const check = () => {
                  if (rowsAt === null && document.querySelectorAll('tr[data-batch-id]').length === rows
                      && document.querySelector('svg.timeline')) rowsAt = performance.now() - t0;
                  const counted = document.querySelector('.summary[data-count-succeeded]');
                  if (rowsAt !== null && counted) resolve([rowsAt, performance.now() - t0]);
                  else if (rowsAt !== null && performance.now() - t0 > waitMs) resolve([rowsAt, null]);
                  else requestAnimationFrame(check);
                };
                check();
              })''', ['#/experiments/' + experiment_id, PAGE_BATCHES, counts_wait_s * 1000])
            times.append((rows_ms, counts_ms))
        os.makedirs('.cache/screenshots', exist_ok=True)
        page.screenshot(path='.cache/screenshots/bench-experiment-100k.png', full_page=True)
        browser.close()
    rows = [r for r, _ in times]
    counted = [c for _, c in times if c is not None]
    return ((statistics.median(rows), min(rows), max(rows)),
            (statistics.median(counted), min(counted), max(counted)) if len(counted) == len(times) else None)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--batches', type=int, default=100000)
    parser.add_argument('--runs', type=int, default=7)
    parser.add_argument('--counts-wait-s', type=float, default=60, help='how long the page may take for counts')
    parser.add_argument('--storage', help='keep the database here and reuse it (default: a temporary one)')
    args = parser.parse_args()

    with MongoServer(storage_path=args.storage) as mongo:
        db_name = 'bench_ui_{}'.format(args.batches)
        conf = agency_config(mongo, db_name, {})
        client = mongo.client()
        db = client[db_name]
        ensure_indexes(db)
        auth.create_or_update_user(db, 'bench', PASSWORD, False, rounds=4)
        existing = db['experiments'].find_one({'batchCount': args.batches}, {'_id': 1})
        if existing and db['batches'].count_documents({}) == args.batches:
            experiment_id = str(existing['_id'])
            print('reusing the experiment of {} batches in {}'.format(args.batches, args.storage))
        else:
            client.drop_database(db_name)
            ensure_indexes(db)
            auth.create_or_update_user(db, 'bench', PASSWORD, False, rounds=4)
            t0 = time.perf_counter()
            experiment_id = fill(db, args.batches)
            print('{} batches of one experiment inserted in {:.1f} s'.format(args.batches, time.perf_counter() - t0))
        t0 = time.perf_counter()
        counts = batch_counts(db, [db['experiments'].find_one({'_id': ObjectId(experiment_id)})])[experiment_id]
        print('batch_counts() directly: {:.0f} ms, {} (sum {})'.format((time.perf_counter() - t0) * 1000, counts,
                                                                     sum(counts.values())))
        with BrokerServer(conf) as broker:
            token = requests.get(broker.url + '/token', auth=('bench', PASSWORD), timeout=30).json()['token']
            api = requests.Session()
            api.headers['Authorization'] = 'Bearer ' + token
            for name, path, params in (
                    ('GET /batches?experimentId&limit=50&timeline=true', '/batches',
                     {'experimentId': experiment_id, 'limit': PAGE_BATCHES, 'timeline': 'true'}),
                    ('GET /experiments/<id> (batchCounts)', '/experiments/' + experiment_id, {}),
                    ('GET /experiments?limit=20', '/experiments', {'limit': 20})):
                statuses = []

                def call():
                    answer = api.get(broker.url + path, params=params, timeout=300)
                    statuses.append(answer.status_code)
                    if answer.status_code == 200 and 'batchCounts' in answer.text:
                        found = answer.json()
                        found = found[0] if isinstance(found, list) else found
                        assert found['batchCounts'] == counts, (found['batchCounts'], counts)
                median, low, high = timed_ms(call, args.runs)
                print('{}: median {:.0f} ms (min {:.0f}, max {:.0f}); answers {}'.format(
                    name, median, low, high, sorted(set(statuses))))
            if 'database unreachable' in broker.log():
                print('broker log:', [line for line in broker.log().splitlines() if 'unreachable' in line][:3])
            rows, counts_shown = browser_ms(broker.url, experiment_id, args.runs, args.counts_wait_s)
            print('experiment page in chromium, from the click: its 50 batch rows and timeline on screen: median '
                  '{:.0f} ms (min {:.0f}, max {:.0f}); its counts by state on screen: {}'.format(
                      *rows, 'median {:.0f} ms (min {:.0f}, max {:.0f})'.format(*counts_shown) if counts_shown
                      else 'not within {} s'.format(args.counts_wait_s)))
        if not args.storage:
            client.drop_database(db_name)
        client.close()


if __name__ == '__main__':
    main()
