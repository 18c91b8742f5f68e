"""Resubmission compares batches without their protected values: fresh credentials match a voided original."""
from cc_agency.broker.routes.experiment_operations import comparable
from cc_agency.secrets import void_batch_secrets


def batch(password, url='http://files/in.txt', user='alice'):
    access = {'url': url, 'auth': {'username': user, 'password': password}}
    return {'inputs': {'file': {'class': 'File', 'connector': {'command': 'red-connector-http', 'access': access}}},
            'outputs': {}}


def test_fresh_credentials_match_the_voided_original():
    stored = void_batch_secrets(batch('old-secret'))  # as the database holds it once the batch ended
    assert comparable(batch('new-secret')) == comparable(stored)


def test_anything_else_that_differs_is_a_different_batch():
    stored = void_batch_secrets(batch('old-secret'))
    assert comparable(batch('new-secret', url='http://files/other.txt')) != comparable(stored)
    assert comparable(batch('new-secret', user='bob')) != comparable(stored)
