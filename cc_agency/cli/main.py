"""`ccagency`: operator commands (create-db-user, create-broker-user, drop-db-collections, node).

Every command takes `-c/--conf-file` (default: $CC_AGENCY_CONF or ~/.config/cc-agency.yml). Problems end the
command with one line on stderr and a non-zero exit code, never a traceback.
"""
import argparse
import sys

import pymongo.errors

from cc_agency.cli import CliError, create_broker_user, create_db_user, drop_db_collections, node
from cc_agency.config import ConfigError, load_config

COMMANDS = {
    'create-db-user': create_db_user,
    'create-broker-user': create_broker_user,
    'drop-db-collections': drop_db_collections,
    'node': node,
}


CONF_HELP = 'configuration file (default: $CC_AGENCY_CONF or ~/.config/cc-agency.yml)'


def build_parser():
    """`-c/--conf-file` is accepted before and after the command (`ccagency -c F cmd` and `ccagency cmd -c F`)."""
    parser = argparse.ArgumentParser(prog='ccagency', description='CC-Agency operator commands.')
    parser.add_argument('-c', '--conf-file', metavar='CONF_FILE', help=CONF_HELP)
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    for name, module in COMMANDS.items():
        sub = subparsers.add_parser(name, help=module.DESCRIPTION, description=module.DESCRIPTION)
        # SUPPRESS: when not given after the command, the value given before it is kept
        sub.add_argument('-c', '--conf-file', metavar='CONF_FILE', help=CONF_HELP, default=argparse.SUPPRESS)
        module.add_arguments(sub)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        conf = load_config(args.conf_file)
        return COMMANDS[args.command].run(conf, args) or 0
    except (ConfigError, CliError) as e:
        print('ccagency {}: {}'.format(args.command, e), file=sys.stderr)
    except pymongo.errors.OperationFailure as e:
        print('ccagency {}: database refused: {}'.format(args.command, e.details.get('errmsg', e) if e.details else e),
              file=sys.stderr)
    except pymongo.errors.ConnectionFailure as e:
        print('ccagency {}: database unreachable ({})'.format(args.command, type(e).__name__), file=sys.stderr)
    except (KeyboardInterrupt, EOFError):
        print('\nccagency {}: aborted'.format(args.command), file=sys.stderr)
    return 1


if __name__ == '__main__':
    sys.exit(main())
