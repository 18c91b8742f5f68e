"""The dashboard in a real browser (Debian's headless chromium driven by Playwright) against a real broker,
controller, Docker engine and database: what a researcher and an operator do with it.

One agency and one browser for the module; each test opens its own browser context (its own tab storage), so
logins do not leak between tests. Screenshots of every page go to .cache/screenshots/ (kept by CI as artifacts).
Every test also fails on a JavaScript error or a Content-Security-Policy violation in the page's console.
"""
import os
import re
import time
import uuid

import pytest
from playwright.sync_api import expect, sync_playwright

from tests import reds
from localcluster.agency import REPO, Agency, agency_config

SCREENSHOTS = os.path.join(REPO, '.cache', 'screenshots')
CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync']
USERS = {'alice': 'alice-ui-pw', 'bob': 'bob-ui-pw', 'carol': 'carol-ui-pw', 'root': 'root-ui-pw'}
LIVE_S = 2  # the dashboard shows a change within this time, without a reload
BATCHES = 20


@pytest.fixture(scope='module')
def ui_agency(mongo_server, mongo_client, engine):
    db_name = 't_ui_{}'.format(uuid.uuid4().hex[:8])
    agency = Agency(agency_config(mongo_server, db_name, {'node1': {'base_url': engine.base_url,
                                                                    'network': 'host'}})).start()
    try:
        for username, password in USERS.items():
            agency.create_user(username, password, admin=username == 'root')
        yield agency
    finally:
        agency.stop()
        mongo_client.drop_database(db_name)


@pytest.fixture(scope='module')
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Tab:
    """A browser context with one page on the dashboard; collects the page's errors."""

    def __init__(self, browser, agency, viewport=None):
        self.context = browser.new_context(viewport=viewport or {'width': 1280, 'height': 900})
        self.page = self.context.new_page()
        self.errors = []
        self.page.on('pageerror', lambda error: self.errors.append(str(error)))
        self.page.on('console', self._console)
        self.page.on('response', self._response)
        self.agency = agency
        self.page.goto(agency.url + '/ui/')

    def _console(self, message):
        # a failed request is logged without its method or address; _response records it with both
        if message.type == 'error' and not message.text.startswith('Failed to load resource'):
            self.errors.append(message.text)

    def _response(self, response):
        # OPTIONS: the dashboard asks whether the API offers a route (404 or 405 without it); not an error
        if response.status >= 400 and response.request.method != 'OPTIONS':
            self.errors.append('{} {} {}'.format(response.status, response.request.method, response.url))

    def login(self, username, password=None):
        page = self.page
        page.fill('input[name=username]', username)
        page.fill('input[name=password]', password or USERS[username])
        page.click('form.login button[type=submit]')
        expect(page.locator('#who')).to_have_text(re.compile('^' + username))
        return self

    def screenshot(self, name):
        os.makedirs(SCREENSHOTS, exist_ok=True)
        self.page.screenshot(path=os.path.join(SCREENSHOTS, name + '.png'), full_page=True)

    def close(self):
        self.context.close()

    def assert_no_errors(self, allowed=()):
        errors = [e for e in self.errors if not any(text in e for text in allowed)]
        assert not errors, errors


@pytest.fixture
def tab(browser, ui_agency):
    tabs = []

    def open_tab(**kwargs):
        tabs.append(Tab(browser, ui_agency, **kwargs))
        return tabs[-1]

    yield open_tab
    for each in tabs:
        each.close()


def session(agency, username):
    return agency.session(username, USERS[username])


def submit(agency, user_session, red):
    response = user_session.post(agency.url + '/red', json=red, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()['experimentId']


def wait_for(predicate, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError('not within {} s: {}'.format(timeout_s, what))
        time.sleep(0.1)


@pytest.fixture(scope='module')
def finished(ui_agency, browser, file_server):
    """Alice's experiment of 20 batches, watched on the experiments page from submission to 20 succeeded."""
    file_server.add('/files/ui-in.txt', b'hello ')
    red = reds.red([reds.batch(file_server.base_url, name='ui-in.txt', out='ui-out-{}.txt'.format(i))
                    for i in range(BATCHES)])
    watcher = Tab(browser, ui_agency).login('alice')
    page = watcher.page
    page.evaluate('window.notReloaded = true')
    experiment_id = submit(ui_agency, session(ui_agency, 'alice'), red)
    row = page.locator('tr[data-experiment-id="{}"]'.format(experiment_id))
    expect(row).to_be_visible(timeout=LIVE_S * 1000 + 1000)
    expect(row).to_have_attribute('data-count-succeeded', re.compile(r'^([1-9]|1\d)$'), timeout=60000)
    watcher.screenshot('experiments-running')
    expect(row).to_have_attribute('data-count-succeeded', str(BATCHES), timeout=120000)
    result = {
        'experiment_id': experiment_id,
        'not_reloaded': page.evaluate('window.notReloaded === true'),
        'width': row.locator('[data-segment=succeeded]').evaluate('e => e.style.width'),
        'legend': row.locator('.legend').inner_text(),
        'other_counts': [row.get_attribute('data-count-' + state)
                         for state in ('registered', 'scheduled', 'processing', 'failed', 'cancelled')],
        'image': row.locator('.col-image').inner_text(),
    }
    watcher.screenshot('experiments-done')
    errors = watcher.errors
    watcher.close()
    result['errors'] = errors
    return result


def test_progress_bar_reaches_20_succeeded_live_without_reload(finished):
    assert finished['not_reloaded']
    assert finished['width'] == '100%' and finished['legend'] == '20 succeeded'
    assert finished['other_counts'] == ['0'] * 5
    assert finished['image'] == reds.TEST_IMAGE
    assert not finished['errors'], finished['errors']


def test_experiment_page_lists_batches_and_plots_their_runs(tab, finished):
    ui = tab().login('alice')
    page = ui.page
    page.click('tr[data-experiment-id="{}"] a'.format(finished['experiment_id']))
    rows = page.locator('tr[data-batch-id]')
    expect(rows).to_have_count(BATCHES)
    expect(page.locator('tr[data-batch-id][data-state=succeeded]')).to_have_count(BATCHES)
    expect(page.locator('svg.timeline .run.outcome-succeeded')).to_have_count(BATCHES)
    assert page.locator('svg.timeline .lane-label').all_text_contents() == ['node1']
    assert page.locator('.summary').get_attribute('data-count-succeeded') == str(BATCHES)
    assert re.match(r'^\d+(\.\d)? s$', rows.first.locator('td').nth(4).inner_text())  # its duration
    ui.screenshot('experiment')
    page.select_option('select[name=state]', 'failed')
    expect(page.locator('tr[data-batch-id]')).to_have_count(0)
    expect(page.locator('p.empty', has_text='No batches in this state')).to_be_visible()
    # cancel-all and resubmit: shown only once the API offers them (DELETE /experiments/<id>, POST .../resubmit)
    offered = session(ui.agency, 'alice').options(ui.agency.url + '/experiments/' + finished['experiment_id'])
    shown = page.locator('[data-action=cancel-all]').count() == 1
    assert shown == ('DELETE' in offered.headers.get('Allow', ''))
    expect(page.locator('details.howto summary')).to_have_text('How to resubmit the failed batches')
    ui.assert_no_errors()


def test_batch_page_shows_history_and_stdout(tab, finished):
    ui = tab().login('alice')
    page = ui.page
    page.goto(ui.agency.url + '/ui/#/experiments/' + finished['experiment_id'])
    page.locator('tr[data-batch-id] a').first.click()
    expect(page.locator('#output-stdout')).to_have_text('processed 6 bytes\n')
    expect(page.locator('#output-stderr')).to_have_text('note on stderr\n')
    states = page.locator('ol.history li').evaluate_all('items => items.map(i => i.dataset.state)')
    assert states == ['registered', 'scheduled', 'processing', 'succeeded']
    expect(page.locator('[data-action=cancel]')).to_be_hidden()
    ui.screenshot('batch')
    ui.assert_no_errors()


def test_running_batch_shows_on_nodes_and_is_cancelled_from_its_page(tab, ui_agency, file_server):
    file_server.add('/files/ui-sleep.txt', b'x')
    red = reds.red([reds.batch(file_server.base_url, name='ui-sleep.txt', script='import time; time.sleep(300)')],
                   ram=512)
    alice = session(ui_agency, 'alice')
    experiment_id = submit(ui_agency, alice, red)
    [batch_id] = [b['_id'] for b in alice.get(ui_agency.url + '/batches', params={'experimentId': experiment_id},
                                              timeout=10).json()]
    wait_for(lambda: alice.get(ui_agency.url + '/batches/' + batch_id, timeout=10).json()['state'] == 'processing',
             60, 'the batch runs')

    ui = tab().login('alice')
    page = ui.page
    page.click('#nav a[data-section=nodes]')
    node = page.locator('[data-node=node1]')
    expect(node).to_have_attribute('data-state', 'online')
    expect(node).to_have_attribute('data-ram-used-mib', '512')
    expect(node.locator('.meter-text').first).to_contain_text(re.compile(r'^512 of [\d,]+ MiB in use$'))
    expect(node.locator('li[data-batch-id="{}"]'.format(batch_id))).to_have_attribute('data-state', 'processing')
    ui.screenshot('nodes-running')

    node.locator('li[data-batch-id="{}"] a'.format(batch_id)).click()
    expect(page.locator('.summary')).to_have_attribute('data-state', 'processing')
    expect(page.locator('section', has=page.locator('#output-stdout')).locator('.note')).to_have_text(
        'Not available yet: the batch is processing.')
    page.click('[data-action=cancel]')
    wait_for(lambda: alice.get(ui_agency.url + '/batches/' + batch_id, timeout=10).json()['state'] == 'cancelled',
             10, 'the API says cancelled')
    expect(page.locator('.summary')).to_have_attribute('data-state', 'cancelled', timeout=LIVE_S * 1000 + 1000)
    expect(page.locator('[data-action=cancel]')).to_be_hidden()
    ui.screenshot('batch-cancelled')
    page.click('#nav a[data-section=nodes]')
    expect(page.locator('[data-node=node1]')).to_have_attribute('data-ram-used-mib', '0', timeout=15000)
    ui.assert_no_errors(allowed=('/stdout', '/stderr'))  # 404 while it runs: the API stores them at its end


def test_second_user_sees_none_of_the_first_users_experiments(tab, finished):
    ui = tab().login('bob')
    page = ui.page
    expect(page.locator('p.empty', has_text='No experiments yet')).to_be_visible()
    expect(page.locator('tr[data-experiment-id]')).to_have_count(0)
    ui.screenshot('experiments-other-user')
    page.goto(ui.agency.url + '/ui/#/experiments/' + finished['experiment_id'])
    expect(page.locator('#status')).to_have_text('experiment not found')
    expect(page.locator('tr[data-batch-id]')).to_have_count(0)
    ui.assert_no_errors(allowed=('404',))  # the API's 404 answer, which the page shows


def test_admin_sees_everyone_with_a_user_filter_and_logs_out(tab, finished):
    ui = tab().login('root')
    page = ui.page
    expect(page.locator('#who')).to_have_text('root (admin)')
    row = page.locator('tr[data-experiment-id="{}"]'.format(finished['experiment_id']))
    expect(row.locator('.col-user')).to_have_text('alice')
    ui.screenshot('experiments-admin')
    page.fill('input[name=username-filter]', 'bob')
    page.press('input[name=username-filter]', 'Enter')
    expect(page.locator('tr[data-experiment-id]')).to_have_count(0)
    page.fill('input[name=username-filter]', 'alice')
    page.press('input[name=username-filter]', 'Enter')
    expect(row).to_be_visible()
    page.click('#logout')
    expect(page.locator('input[name=password]')).to_be_visible()
    assert page.evaluate('sessionStorage.length') == 0
    ui.assert_no_errors()


def test_wrong_password_shows_a_message_and_the_keyboard_can_log_in(tab):
    ui = tab()
    page = ui.page
    expect(page.locator('input[name=username]')).to_be_focused()  # the form is ready to type into
    page.keyboard.type('carol')
    page.keyboard.press('Tab')
    page.keyboard.type('not-the-password')
    page.keyboard.press('Enter')
    expect(page.locator('#login-message')).to_have_text('Wrong user name or password.')
    expect(page.locator('input[name=password]')).to_be_focused()
    ui.screenshot('login-wrong-password')
    page.keyboard.type(USERS['carol'])
    page.keyboard.press('Enter')
    expect(page.locator('#who')).to_have_text('carol')
    ui.assert_no_errors(allowed=('401',))  # the API's 401 answer, which the page shows


def test_readable_on_a_phone(tab, finished):
    ui = tab(viewport={'width': 390, 'height': 844})
    ui.screenshot('login-phone')
    ui.login('alice')
    page = ui.page
    expect(page.locator('tr[data-experiment-id="{}"]'.format(finished['experiment_id']))).to_be_visible()
    assert page.evaluate('document.documentElement.scrollWidth <= window.innerWidth')
    ui.screenshot('experiments-phone')
    page.goto(ui.agency.url + '/ui/#/nodes')
    expect(page.locator('[data-node=node1]')).to_be_visible()
    assert page.evaluate('document.documentElement.scrollWidth <= window.innerWidth')
    ui.screenshot('nodes-phone')
    ui.assert_no_errors()


def test_cancel_all_from_the_experiment_page_and_cordon_from_the_nodes_page(tab, ui_agency, file_server):
    """The buttons the dashboard shows once the API offers DELETE /experiments/<id> and PATCH /nodes/<name>."""
    file_server.add('/files/ui-sleep-all.txt', b'x')
    red = reds.red([reds.batch(file_server.base_url, name='ui-sleep-all.txt', script='import time; time.sleep(300)')
                    for _ in range(2)], ram=512)
    alice = session(ui_agency, 'alice')
    experiment_id = submit(ui_agency, alice, red)

    def states():
        return sorted(b['state'] for b in alice.get(ui_agency.url + '/batches', params={
            'experimentId': experiment_id}, timeout=10).json())

    wait_for(lambda: 'processing' in states(), 60, 'a batch runs')
    ui = tab().login('alice')
    page = ui.page
    page.on('dialog', lambda dialog: dialog.accept())  # "Cancel every batch of this experiment ...?"
    page.goto(ui_agency.url + '/ui/#/experiments/' + experiment_id)
    page.click('[data-action=cancel-all]')
    wait_for(lambda: states() == ['cancelled', 'cancelled'], 15, 'the API says both are cancelled')
    expect(page.locator('.summary')).to_have_attribute('data-count-cancelled', '2', timeout=LIVE_S * 1000 + 1000)
    expect(page.locator('details.howto')).to_contain_text('/resubmit')
    ui.screenshot('experiment-cancelled-all')
    ui.assert_no_errors(allowed=('/stdout', '/stderr'))

    admin, root = tab().login('root'), session(ui_agency, 'root')
    admin.page.click('#nav a[data-section=nodes]')

    def schedulable():
        return {n['nodeName']: n['schedulable'] for n in root.get(ui_agency.url + '/nodes', timeout=10).json()}

    node = admin.page.locator('[data-node=node1]')
    node.locator('[data-action=cordon]').click()
    wait_for(lambda: schedulable() == {'node1': False}, 10, 'the API says node1 is cordoned')
    expect(node.locator('.badge.cordoned')).to_be_visible(timeout=LIVE_S * 1000 + 1000)
    admin.screenshot('nodes-cordoned')
    expect(node.locator('[data-action=cordon]')).to_have_text('Uncordon')
    node.locator('[data-action=cordon]').click()
    wait_for(lambda: schedulable() == {'node1': True}, 10, 'the API says node1 takes work again')
    admin.assert_no_errors()
