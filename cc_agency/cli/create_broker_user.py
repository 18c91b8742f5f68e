"""`ccagency create-broker-user`: add a user of the REST API (or update an existing one)."""
from cc_agency import auth
from cc_agency.cli import CliError, prompts
from cc_agency.db import database, ensure_indexes

DESCRIPTION = 'Create a broker user to authenticate with the web API (an existing user is updated).'


def add_arguments(parser):
    parser.add_argument('--username', help='non-interactive: the user name')
    parser.add_argument('--password-stdin', action='store_true',
                        help='non-interactive: read the password from the first line of stdin')
    parser.add_argument('--admin', action='store_true', help='non-interactive: grant admin rights')


def _interactive():
    print('You are in the process of creating a user account.')
    print('ATTENTION: an already existing user with the exact same username will be updated with new settings!')
    prompts.ask('Hit [ENTER] to proceed...')
    username = prompts.ask('Username: ').strip()
    password = prompts.ask_secret('Password: ')
    if password != prompts.ask_secret('Retype password: '):
        raise CliError('the passwords do not match')
    is_admin = prompts.confirm('Grant admin rights [y/N]: ')
    return username, password, is_admin


def run(conf, args):
    if args.username is not None:
        if not args.password_stdin:
            raise CliError('--username needs --password-stdin (passwords are never taken from the command line)')
        username, password, is_admin = args.username.strip(), prompts.secret_from_stdin(), args.admin
    else:
        username, password, is_admin = _interactive()
    if not username:
        raise CliError('the username must not be empty')
    if ':' in username:
        raise CliError('the username must not contain ":" (HTTP Basic separates it from the password with it)')
    try:
        auth.check_password_usable(password)
    except auth.PasswordError as e:
        raise CliError(str(e))
    db = database(conf)
    ensure_indexes(db)
    created = auth.create_or_update_user(db, username, password, is_admin, conf['broker']['auth']['bcrypt_rounds'])
    print('{} user "{}"{}.'.format('Created' if created else 'Updated', username, ' with admin rights' if is_admin else ''))
    return 0
