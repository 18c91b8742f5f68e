"""docs/openapi.yaml against the broker: a valid OpenAPI 3 document, the same routes as the app serves, and a fuzz run
(schemathesis, from the document) against a running broker: no answer >= 500, every status, content type and body
as documented."""
import base64
import os
import re

import pytest
import requests
import schemathesis
import yaml
from bson import ObjectId
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)

from cc_agency.broker.factory import create_app
from tests import reds
from tests.integration.api_support import PASSWORD, broker  # noqa: F401 (fixture)

SPEC_PATH = os.path.join(os.path.dirname(__file__), '..', '..', 'docs', 'openapi.yaml')
IGNORED_METHODS = {'HEAD', 'OPTIONS'}


def spec():
    with open(SPEC_PATH) as f:
        return yaml.safe_load(f)


def documented_operations():
    return {(method.upper(), path) for path, item in spec()['paths'].items()
            for method in item if method in ('get', 'post', 'put', 'patch', 'delete')}


def test_document_is_valid_openapi_3():
    document = spec()
    validate(document)
    assert document['openapi'].startswith('3.')


def test_every_route_is_documented_and_every_documented_route_is_served(broker):
    app = create_app(broker.conf)
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == 'static':
            continue
        path = re.sub(r'<(?:[^:>]+:)?([^>]+)>', r'{\1}', rule.rule)
        served.update((method, path) for method in rule.methods - IGNORED_METHODS)
    assert served == documented_operations()


@pytest.fixture(scope='module')
def sample(broker):
    """An admin's session and one of everything, so every documented operation can answer 200."""
    admin = broker.user_session('admin', admin=True)
    experiment_id = broker.submit(admin, batches=2)
    first, second = [b['_id'] for b in broker.get(admin, '/batches', experimentId=experiment_id).json()]
    broker.db['batch_output'].insert_one({'_id': ObjectId(first), 'stdout': 'o', 'stderr': 'e'})
    broker.db['nodes'].insert_one({'_id': 'node1', 'state': 'online', 'ramMiB': 4096, 'cpus': 2, 'gpus': []})
    return admin, {'experiment_id': experiment_id, 'batch_id': first, 'cancel_id': second, 'asset': 'app.js',
                   'node_name': 'node1'}


def test_every_documented_operation_answers_as_documented(broker, sample):
    admin, ids = sample
    document = spec()
    for method, path in sorted(documented_operations()):
        operation = document['paths'][path][method.lower()]
        values = dict(ids, batch_id=ids['cancel_id'] if method == 'DELETE' else ids['batch_id'])
        url = broker.url + path.format(**values)
        headers = {}
        if path == '/refreshtoken':  # takes a refresh token only
            login = requests.post(broker.url + '/login', auth=(admin.username, PASSWORD), timeout=30)
            headers['Authorization'] = 'Bearer ' + login.json()['refresh_token']
        elif (method, path) == ('DELETE', '/token'):  # revokes the token it is sent with: not the session's
            headers['Authorization'] = 'Bearer ' + broker.token(admin.username)
        if path.endswith('/resubmit'):  # the sample's own RED; its batches were cancelled by DELETE before
            response = admin.post(url, json=reds.red_of(2), params={'states': 'failed,cancelled'}, timeout=30)
        elif 'requestBody' in operation:
            body = operation['requestBody']['content']['application/json']['schema'].get('example')
            response = admin.request(method, url, json=body or document['components']['schemas']['Red']['example'],
                                     headers=headers, timeout=30)
        else:
            response = admin.request(method, url, headers=headers, timeout=30)
        assert response.status_code == 200, (method, path, response.text)
        documented = operation['responses']['200']
        if '$ref' in documented:
            documented = document['components']['responses'][documented['$ref'].split('/')[-1]]
        assert response.headers['Content-Type'].split(';')[0] in documented['content'], (method, path)


# ------------------------------------------------------------------------------------------------------- fuzzing

schema = schemathesis.openapi.from_path(SPEC_PATH)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope='module')
def fuzz_auth(broker):
    """An admin's Basic header (an admin sees everything, so generated ids reach the deepest code paths; a password,
    not a token, so that a generated DELETE /token cannot log the rest of the run out)."""
    username = broker.new_user('fuzz', admin=True)
    broker.submit(broker.session(username), batches=3)
    return {'Authorization': 'Basic ' + base64.b64encode('{}:{}'.format(username, PASSWORD).encode()).decode()}


@schema.parametrize()
@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
def test_fuzz_no_server_error_and_answers_as_documented(case, broker, fuzz_auth):
    response = case.call(base_url=broker.url, headers=fuzz_auth, timeout=30)
    case.validate_response(response, checks=CHECKS)


def public_operations():
    """Operations documented with `security: []`: liveness and the dashboard's files (which hold no data)."""
    return {(method.upper(), path) for path, item in spec()['paths'].items() for method, operation in item.items()
            if method in ('get', 'post', 'put', 'patch', 'delete') and operation.get('security') == []}


def test_public_operations_are_only_liveness_and_the_dashboard():
    assert public_operations() == {('GET', '/'), ('GET', '/ui/'), ('GET', '/ui/{asset}')}


def test_fuzz_without_credentials_is_always_401(broker):
    """Every operation but the public ones wants a login, whatever else the request holds."""
    for method, path in documented_operations() - public_operations():
        response = requests.request(method, broker.url + path.format(experiment_id='0' * 24, batch_id='0' * 24,
                                                                     node_name='node1'), timeout=10)
        assert response.status_code == 401, (method, path)
