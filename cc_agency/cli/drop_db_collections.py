"""`ccagency drop-db-collections`: drop named collections of the agency's database (asks first)."""
from cc_agency.cli import CliError, prompts
from cc_agency.db import ALL_COLLECTIONS, database

DESCRIPTION = 'Drop collections of the agency database (all state of experiments, batches, users...).'


def add_arguments(parser):
    parser.add_argument('collections', nargs='*', metavar='COLLECTION',
                        help='collections to drop, of: {}'.format(', '.join(ALL_COLLECTIONS)))
    parser.add_argument('--all', action='store_true', help='drop every collection of the agency')
    parser.add_argument('-y', '--yes', action='store_true', help='do not ask for confirmation')


def run(conf, args):
    names = list(ALL_COLLECTIONS) if args.all else args.collections
    if not names:
        raise CliError('name the collections to drop, or use --all')
    unknown = [name for name in names if name not in ALL_COLLECTIONS]
    if unknown:
        raise CliError('unknown collection "{}" (known: {})'.format(unknown[0], ', '.join(ALL_COLLECTIONS)))
    db_name = conf['mongo']['db']
    if not args.yes and not prompts.confirm('Drop {} from database "{}"? [y/N]: '.format(', '.join(names), db_name)):
        print('Nothing dropped.')
        return 1
    db = database(conf)
    for name in names:
        db.drop_collection(name)
        print('Dropped {}.'.format(name))
    return 0
