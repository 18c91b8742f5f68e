"""`ccagency-broker`: the broker on a plain development server (production runs app.py under uwsgi)."""
import argparse
import sys

from cc_agency.config import ConfigError, load_config


def main(argv=None):
    parser = argparse.ArgumentParser(prog='ccagency-broker', description='CC-Agency Broker on a development server.')
    parser.add_argument('-c', '--conf-file', help='configuration file (default: $CC_AGENCY_CONF or '
                        '~/.config/cc-agency.yml)')
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=8080)
    args = parser.parse_args(argv)
    try:
        conf = load_config(args.conf_file)
    except ConfigError as e:
        print('ccagency-broker: {}'.format(e), file=sys.stderr)
        return 2
    from werkzeug.serving import run_simple
    from cc_agency.broker.factory import create_app
    run_simple(args.host, args.port, create_app(conf), threaded=True, use_reloader=False)
    return 0


if __name__ == '__main__':
    sys.exit(main())
