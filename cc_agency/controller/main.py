"""`ccagency-controller`: run the controller in the foreground (systemd runs it so)."""
import argparse
import logging
import signal
import sys

from cc_agency.config import ConfigError, config_path, load_config
from cc_agency.controller.daemon import Controller
from cc_agency.db import database


def main(argv=None):
    parser = argparse.ArgumentParser(prog='ccagency-controller', description='CC-Agency Controller: places batches '
                                     'on Docker engines and runs them.')
    parser.add_argument('-c', '--conf-file', help='configuration file (default: $CC_AGENCY_CONF or '
                        '~/.config/cc-agency.yml)')
    parser.add_argument('--log-level', default='INFO', choices=['DEBUG', 'INFO', 'WARNING', 'ERROR'])
    args = parser.parse_args(argv)
    try:
        conf = load_config(args.conf_file)
    except ConfigError as e:
        print('ccagency-controller: {}'.format(e), file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level, format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    # their debug logs carry request bodies and database commands, with the secrets in them: never at DEBUG
    for noisy in ('urllib3', 'pymongo', 'docker'):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    controller = Controller(conf, database(conf), conf_path=config_path(args.conf_file))
    signal.signal(signal.SIGTERM, lambda *_: controller.stop())
    signal.signal(signal.SIGINT, lambda *_: controller.stop())
    signal.signal(signal.SIGHUP, lambda *_: controller.request_reload())  # systemctl reload: see reload.py
    controller.serve_forever()
    return 0


if __name__ == '__main__':
    sys.exit(main())
