"""The operator CLI `ccagency`, driven as an operator drives it: on a terminal (a real pty, with pexpect) for the
prompts, with flags and stdin otherwise; its effects checked in MongoDB and over HTTP against a broker."""
import io
import os
import subprocess
import sys
import time
import uuid

import pexpect
import pymongo
import pymongo.errors
import pytest
import requests
import yaml

from cc_agency.auth_cache import TOKEN_CACHE_TTL_S
from localcluster import MongoServer
from tests.integration.api_support import broker  # noqa: F401 (fixture)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CCAGENCY = [sys.executable, '-m', 'cc_agency.cli.main']
ENV = dict(os.environ, PYTHONPATH=REPO, PYTHONUNBUFFERED='1')


def run(*args, stdin=''):
    return subprocess.run(CCAGENCY + list(args), input=stdin, capture_output=True, text=True, env=ENV, cwd=REPO,
                          timeout=60)


def spawn(*args):
    """ccagency on a pseudo-terminal, as in an operator's shell; `child.transcript` is all the terminal showed."""
    child = pexpect.spawn(CCAGENCY[0], CCAGENCY[1:] + list(args), env=ENV, cwd=REPO, encoding='utf-8', timeout=30)
    child.logfile_read = child.transcript = io.StringIO()
    return child


def finish(child):
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus


def login(api, username, password):
    return requests.get(api.url + '/version', auth=(username, password), timeout=30).status_code


# ------------------------------------------------------------------------------------------------------- help

@pytest.mark.parametrize('command, words', [
    ([], ['create-db-user', 'create-broker-user', 'drop-db-collections', '--conf-file']),
    (['create-db-user'], ['--admin-username', '--admin-password-stdin', '--conf-file']),
    (['create-broker-user'], ['--username', '--password-stdin', '--admin', '--conf-file']),
    (['drop-db-collections'], ['COLLECTION', '--all', '--yes', '--conf-file']),
])
def test_help_everywhere(command, words):
    result = run(*command, '--help')
    assert result.returncode == 0, result.stderr
    for word in words:
        assert word in result.stdout


def test_no_command_is_a_usage_error():
    result = run()
    assert result.returncode != 0 and 'usage: ccagency' in result.stderr


# ---------------------------------------------------------------------------------------------- configuration

def write_conf(tmp_path, conf):
    path = tmp_path / 'cc-agency.yml'
    path.write_text(conf if isinstance(conf, str) else yaml.safe_dump(conf))
    return str(path)


@pytest.mark.parametrize('change, words', [
    (lambda c: c['mongo'].update(port='many'), ['mongo.port', 'integer']),
    (lambda c: c['broker'].pop('auth'), ['broker.auth', 'required']),
    (lambda c: c['broker']['auth'].update(num_login_attempts=0), ['broker.auth.num_login_attempts']),
    (lambda c: c['mongo'].update(colour='blue'), ['mongo', 'colour']),
])
@pytest.mark.parametrize('command', ['create-broker-user', 'create-db-user', 'drop-db-collections'])
def test_wrong_config_is_one_line_naming_the_key(broker, tmp_path, change, words, command):
    conf = yaml.safe_load(yaml.safe_dump(broker.conf))
    change(conf)
    result = run(command, '-c', write_conf(tmp_path, conf))
    assert result.returncode != 0
    assert result.stdout == ''
    [line] = result.stderr.strip().splitlines()
    assert all(word in line for word in words), line


@pytest.mark.parametrize('content, words', [
    (None, ['not found']),
    ('broker: [unclosed', ['not valid YAML']),
    ('- a list', ['mapping']),
])
def test_missing_or_unreadable_config_is_one_line(tmp_path, content, words):
    path = str(tmp_path / 'missing.yml') if content is None else write_conf(tmp_path, content)
    result = run('-c', path, 'create-broker-user', '--username', 'x', '--password-stdin', stdin='pw\n')
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert all(word in line for word in words) and path in line


def test_database_unreachable_is_one_line(broker, tmp_path):
    conf = yaml.safe_load(yaml.safe_dump(broker.conf))
    conf['mongo']['port'] = 1  # nothing listens there
    result = run('create-broker-user', '-c', write_conf(tmp_path, conf), '--username', 'x', '--password-stdin',
                 stdin='pw\n')
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert 'database unreachable' in line


# -------------------------------------------------------------------------------------------- create-broker-user

def new_name():
    return 'op-{}'.format(uuid.uuid4().hex[:8])


def create_interactively(broker, username, password, retyped, admin_answer):
    child = spawn('create-broker-user', '-c', broker.server.conf_path)
    child.expect_exact('Hit [ENTER] to proceed...')
    child.sendline('')
    child.expect_exact('Username: ')
    child.sendline(username)
    child.expect_exact('Password: ')
    child.sendline(password)
    child.expect_exact('Retype password: ')
    child.sendline(retyped)
    if password == retyped:
        child.expect_exact('Grant admin rights [y/N]: ')
        child.sendline(admin_answer)
    status = finish(child)
    return status, child.transcript.getvalue()


def test_create_broker_user_interactively(broker):
    username, password = new_name(), 'typed-secret-1'
    status, output = create_interactively(broker, username, password, password, '')
    assert status == 0, output
    assert 'Created user "{}"'.format(username) in output
    assert password not in output  # not echoed
    assert login(broker, username, password) == 200
    stored = broker.db['users'].find_one({'username': username})
    assert stored['isAdmin'] is False and stored['passwordHash'].startswith('$2') and password not in str(stored)


def test_create_admin_interactively_and_update_it(broker):
    username = new_name()
    assert create_interactively(broker, username, 'first-pw', 'first-pw', 'y')[0] == 0
    other = broker.user_session('other')
    broker.submit(other)
    admin = broker.session(username, 'first-pw')
    assert {e['username'] for e in broker.get(admin, '/experiments', limit=1000).json()} >= {other.username}

    status, output = create_interactively(broker, username, 'second-pw', 'second-pw', 'n')
    assert status == 0 and 'Updated user "{}"'.format(username) in output
    assert login(broker, username, 'first-pw') == 401
    assert login(broker, username, 'second-pw') == 200
    assert broker.db['users'].find_one({'username': username})['isAdmin'] is False
    # the token of the old password ended; a broker process trusts a token it verified for TOKEN_CACHE_TTL_S
    deadline = time.monotonic() + TOKEN_CACHE_TTL_S + 2
    while broker.get(admin, '/version').status_code != 401:
        assert time.monotonic() < deadline, 'the token of the old password still works'
        time.sleep(0.2)


def test_mistyped_password_creates_nothing(broker):
    username = new_name()
    status, output = create_interactively(broker, username, 'one-pw', 'other-pw', None)
    assert status != 0 and 'do not match' in output
    assert broker.db['users'].find_one({'username': username}) is None


@pytest.mark.parametrize('username, password, words', [
    ('', 'pw', 'username must not be empty'),
    ('a:b', 'pw', '":"'),
    ('x', '', 'password must not be empty'),
    ('x', 'p' * 73, '72 bytes'),
])
def test_bad_usernames_and_passwords_are_refused(broker, username, password, words):
    result = run('create-broker-user', '-c', broker.server.conf_path, '--username', username, '--password-stdin',
                 stdin=password + '\n')
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert words in line


def test_create_broker_user_non_interactively(broker):
    username = new_name()
    result = run('-c', broker.server.conf_path, 'create-broker-user', '--username', username, '--password-stdin',
                 '--admin', stdin='piped-secret\n')
    assert result.returncode == 0, result.stderr
    assert 'Created user "{}" with admin rights.'.format(username) in result.stdout
    assert login(broker, username, 'piped-secret') == 200
    assert broker.db['users'].find_one({'username': username})['isAdmin'] is True


def test_password_is_never_taken_from_the_command_line(broker):
    result = run('create-broker-user', '-c', broker.server.conf_path, '--username', new_name())
    assert result.returncode != 0 and '--password-stdin' in result.stderr


# ------------------------------------------------------------------------------------------- drop-db-collections

def test_drop_collections_asks_first(broker):
    broker.new_user()
    assert broker.db['users'].count_documents({}) > 0
    child = spawn('drop-db-collections', '-c', broker.server.conf_path, 'login_failures', 'users')
    child.expect_exact('Drop login_failures, users from database "{}"? [y/N]: '.format(broker.db.name))
    child.sendline('n')
    assert finish(child) != 0
    assert broker.db['users'].count_documents({}) > 0

    child = spawn('drop-db-collections', '-c', broker.server.conf_path, 'users')
    child.expect_exact('[y/N]: ')
    child.sendline('y')
    child.expect_exact('Dropped users.')
    assert finish(child) == 0
    assert broker.db['users'].count_documents({}) == 0


def test_drop_collections_with_yes_and_all(broker, mongo_client):
    db = mongo_client['cli_drop_{}'.format(uuid.uuid4().hex[:8])]
    conf = yaml.safe_load(yaml.safe_dump(broker.conf))
    conf['mongo']['db'] = db.name
    path = os.path.join(broker.server.work_dir, 'drop.yml')
    with open(path, 'w') as f:
        yaml.safe_dump(conf, f)
    for name in ('experiments', 'batches', 'nodes'):
        db[name].insert_one({'x': 1})
    db['unrelated'].insert_one({'x': 1})
    result = run('drop-db-collections', '-c', path, '--yes', 'nodes')
    assert result.returncode == 0 and 'Dropped nodes.' in result.stdout
    assert set(db.list_collection_names()) == {'experiments', 'batches', 'unrelated'}
    assert run('drop-db-collections', '-c', path, '--all', '--yes').returncode == 0
    assert db.list_collection_names() == ['unrelated']  # only the agency's own collections
    mongo_client.drop_database(db.name)


@pytest.mark.parametrize('args, words', [([], '--all'), (['nodez'], 'unknown collection "nodez"')])
def test_drop_collections_needs_known_names(broker, args, words):
    result = run('drop-db-collections', '-c', broker.server.conf_path, '--yes', *args)
    assert result.returncode != 0 and words in result.stderr


# ----------------------------------------------------------------------------------------------- create-db-user

@pytest.fixture(scope='module')
def auth_mongo():
    """A MongoDB-wire server with access control, and an administrator made before it was switched on."""
    server = MongoServer()
    try:
        server.start()
        client = server.client()
        client.admin.command('createUser', 'root', pwd='root-pw', roles=[{'role': 'root', 'db': 'admin'}])
        client.close()
        server.extra_args = ['--auth']
        server.restart()
        yield server
    finally:
        server.stop()
        server.remove()


def db_user_conf(tmp_path, server, password):
    return write_conf(tmp_path, {
        'broker': {'external_url': 'http://127.0.0.1/', 'auth': {
            'num_login_attempts': 3, 'block_for_seconds': 30, 'tokens_valid_for_seconds': 60}},
        'controller': {'external_url': 'tcp://127.0.0.1:6001', 'bind_host': '127.0.0.1', 'bind_port': 6001,
                       'docker': {'core_image': {'url': 'x'}, 'nodes': {}},
                       'scheduling': {'strategy': 'spread', 'attempts_to_fail': 3}},
        'mongo': {'host': server.host, 'port': server.port, 'db': 'ccagency', 'username': 'ccadmin',
                  'password': password},
    })


def can_read_write(server, database, password):
    client = pymongo.MongoClient(server.host, server.port, username='ccadmin', password=password,
                                 authSource='ccagency', serverSelectionTimeoutMS=5000)
    try:
        client[database]['probe'].insert_one({'x': 1})
        return client[database]['probe'].count_documents({}) > 0
    except pymongo.errors.OperationFailure:
        return False
    finally:
        client.close()


def test_create_db_user_interactively_then_update_it_with_flags(auth_mongo, tmp_path):
    conf_path = db_user_conf(tmp_path, auth_mongo, 'first-db-secret')
    child = spawn('create-db-user', '-c', conf_path)
    child.expect_exact('MongoDB admin username (empty for none): ')
    child.sendline('root')
    child.expect_exact('MongoDB admin password: ')
    child.sendline('root-pw')
    child.expect_exact('Created MongoDB user "ccadmin" (readWrite on ccagency).')
    assert finish(child) == 0
    assert 'root-pw' not in child.transcript.getvalue()
    assert can_read_write(auth_mongo, 'ccagency', 'first-db-secret')
    assert not can_read_write(auth_mongo, 'other', 'first-db-secret')  # readWrite on mongo.db only

    conf_path = db_user_conf(tmp_path, auth_mongo, 'second-db-secret')
    result = run('create-db-user', '-c', conf_path, '--admin-username', 'root', '--admin-password-stdin',
                 stdin='root-pw\n')
    assert result.returncode == 0, result.stderr
    assert 'Updated MongoDB user "ccadmin"' in result.stdout
    assert can_read_write(auth_mongo, 'ccagency', 'second-db-secret')
    assert not can_read_write(auth_mongo, 'ccagency', 'first-db-secret')


def test_create_db_user_never_puts_a_password_on_a_command_line(auth_mongo, tmp_path):
    """The administrator's password comes from a prompt or stdin, the user's from the configuration file: the
    process' own command line holds neither (it is what `ps` shows to every local user)."""
    conf_path = db_user_conf(tmp_path, auth_mongo, 'db-secret-in-file')
    child = spawn('create-db-user', '-c', conf_path, '--admin-username', 'root')
    child.expect_exact('MongoDB admin password: ')
    with open('/proc/{}/cmdline'.format(child.pid), 'rb') as f:
        command_line = f.read().decode()
    child.sendline('root-pw')
    assert finish(child) == 0
    assert 'root-pw' not in command_line and 'db-secret-in-file' not in command_line
    assert not any(name in command_line for name in ('mongo ', 'mongosh', 'sh -c'))


def test_create_db_user_with_wrong_admin_password_is_one_line(auth_mongo, tmp_path):
    conf_path = db_user_conf(tmp_path, auth_mongo, 'x')
    result = run('create-db-user', '-c', conf_path, '--admin-username', 'root', '--admin-password-stdin',
                 stdin='wrong\n')
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert 'authentication failed' in line and 'wrong' not in line


def test_create_db_user_needs_mongo_username(tmp_path, auth_mongo):
    conf = yaml.safe_load(open(db_user_conf(tmp_path, auth_mongo, 'x')))
    del conf['mongo']['username'], conf['mongo']['password']
    result = run('create-db-user', '-c', write_conf(tmp_path, conf), '--admin-username', '')
    assert result.returncode != 0 and 'mongo.username' in result.stderr
