"""`ccagency create-db-user`: create or update the MongoDB user of `mongo.username` with readWrite on `mongo.db`.

Runs through pymongo as a MongoDB administrator (credentials by flag and stdin, or by prompt), so no password ever
appears on a command line or in a shell.
"""
from cc_agency.cli import CliError, prompts
from cc_agency.db import mongo_client

DESCRIPTION = 'Create or update the MongoDB user configured under mongo.username with readWrite on mongo.db.'


def add_arguments(parser):
    parser.add_argument('--admin-username', help='MongoDB administrator (default: prompt; empty: no authentication)')
    parser.add_argument('--admin-password-stdin', action='store_true',
                        help='read the administrator password from the first line of stdin')
    parser.add_argument('--admin-auth-db', default='admin', help='database of the administrator (default: admin)')


def run(conf, args):
    mongo = conf['mongo']
    if not mongo.get('username'):
        raise CliError('config key mongo.username: is required for create-db-user')
    admin_username = args.admin_username
    if admin_username is None:
        admin_username = prompts.ask('MongoDB admin username (empty for none): ').strip()
    admin_password = None
    if admin_username:
        admin_password = prompts.secret_from_stdin() if args.admin_password_stdin else \
            prompts.ask_secret('MongoDB admin password: ')
    admin_conf = {'mongo': dict(mongo, username=admin_username or None, password=admin_password,
                                auth_source=args.admin_auth_db)}
    if not admin_username:
        admin_conf['mongo'].pop('username')
        admin_conf['mongo'].pop('password')
    client = mongo_client(admin_conf)
    db = client[mongo['db']]
    roles = [{'role': 'readWrite', 'db': mongo['db']}]
    existing = db.command('usersInfo', mongo['username']).get('users')
    if existing:
        db.command('updateUser', mongo['username'], pwd=mongo['password'], roles=roles)
        print('Updated MongoDB user "{}" (readWrite on {}).'.format(mongo['username'], mongo['db']))
    else:
        db.command('createUser', mongo['username'], pwd=mongo['password'], roles=roles)
        print('Created MongoDB user "{}" (readWrite on {}).'.format(mongo['username'], mongo['db']))
    return 0
