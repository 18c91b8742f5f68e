"""Protected keys: masking for the API, voiding at the end, `_` removed before use."""
from cc_agency import secrets

IO = {
    'inputs': {
        'f': {'class': 'File', 'connector': {'command': 'c', 'access': {
            'url': 'u', 'password': 'pw', '_username': 'alice', 'auth': {'privateKey': 'k', 'user': 'x'}}}},
        'files': [{'class': 'File', 'connector': {'command': 'c', 'access': {'password': 'pw2'}}}],
        'plain': 'password',
    },
    'outputs': {'o': {'class': 'File', 'connector': {'command': 'c', 'access': {'_token': 't', 'url': 'v'}}}},
}


def test_void_replaces_only_protected_values():
    voided = secrets.void_batch_secrets(IO)
    access = voided['inputs']['f']['connector']['access']
    assert access == {'url': 'u', 'password': None, '_username': None, 'auth': {'privateKey': None, 'user': 'x'}}
    assert voided['inputs']['files'][0]['connector']['access'] == {'password': None}
    assert voided['inputs']['plain'] == 'password'
    assert voided['outputs']['o']['connector']['access'] == {'_token': None, 'url': 'v'}
    assert IO['inputs']['f']['connector']['access']['password'] == 'pw'  # input untouched


def test_mask_and_usable_access():
    masked = secrets.mask_batch_secrets(IO)
    assert masked['outputs']['o']['connector']['access']['_token'] == secrets.MASK
    usable = secrets.usable_batch_access(IO)
    assert usable['inputs']['f']['connector']['access']['username'] == 'alice'
    assert usable['outputs']['o']['connector']['access'] == {'token': 't', 'url': 'v'}


def test_protected_prefix_errors():
    assert secrets.protected_prefix_errors({'_a': 1, 'b': {'_c': 'ok', '_d': None}}) == ['access._a', 'access.b._d']
