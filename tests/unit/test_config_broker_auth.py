"""The broker's authentication and cross-site keys: cc-agency 9.3's `broker.auth.jwt` loads, its expiries are what
POST /login uses (else the seed's `tokens_valid_for_seconds`), and `broker.cors_origins` takes exact origins only."""
import copy

import pytest
import yaml

from cc_agency import auth
from cc_agency.config import ConfigError, check_config
from tests.unit.test_config import SEED

SEED_CONF = yaml.safe_load(SEED)


def conf_with(**broker):
    conf = copy.deepcopy(SEED_CONF)
    conf['broker'].update(broker)
    return conf


def test_cc_agency_9_3_jwt_section_loads_and_sets_the_expiries():
    conf = copy.deepcopy(SEED_CONF)
    conf['broker']['auth']['jwt'] = {'secret_key': 'k', 'access_token_expires': 900, 'refresh_token_expires': 43200}
    check_config(conf)
    assert auth.access_token_valid_for_s(conf['broker']['auth']) == 900
    assert auth.refresh_token_valid_for_s(conf['broker']['auth']) == 43200


def test_without_jwt_both_expiries_are_tokens_valid_for_seconds():
    check_config(SEED_CONF)
    assert auth.access_token_valid_for_s(SEED_CONF['broker']['auth']) == 86400
    assert auth.refresh_token_valid_for_s(SEED_CONF['broker']['auth']) == 86400


@pytest.mark.parametrize('jwt, key', [
    ({'access_token_expires': 0}, 'broker.auth.jwt.access_token_expires'),
    ({'refresh_token_expires': 'soon'}, 'broker.auth.jwt.refresh_token_expires'),
    ({'secret': 'x'}, 'broker.auth.jwt: unknown key'),
])
def test_wrong_jwt_keys_are_named(jwt, key):
    conf = copy.deepcopy(SEED_CONF)
    conf['broker']['auth']['jwt'] = jwt
    with pytest.raises(ConfigError, match=key):
        check_config(conf)


def test_cors_origins_are_exact_origins():
    check_config(conf_with(cors_origins=['https://ui.example.org', 'http://localhost:3000']))
    for wrong in (['*'], ['https://ui.example.org/'], ['https://ui.example.org/path'], ['ui.example.org'],
                  'https://ui.example.org', ['https://a.example', 'https://a.example'], ['https://*.example.org']):
        with pytest.raises(ConfigError, match='broker.cors_origins'):
            check_config(conf_with(cors_origins=wrong))
