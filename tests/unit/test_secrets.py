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


# --- masking of what the controller stores and logs -------------------------------------------------------------
import json  # noqa: E402 (the masking tests' own imports)
import urllib.parse  # noqa: E402

from hypothesis import assume, given, settings, strategies as st  # noqa: E402

secret_text = st.text(min_size=1, max_size=40)
filler = st.text(max_size=30)


def spellings(value):
    """How a message may quote a value: as sent, URL-encoded, JSON-escaped (in a JSON document or not)."""
    return [value, urllib.parse.quote(value, safe=''), urllib.parse.quote_plus(value), urllib.parse.quote(value),
            json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1], json.dumps(value)]


@settings(max_examples=300, deadline=None)
@given(values=st.lists(secret_text, min_size=1, max_size=3), pieces=st.lists(filler, min_size=1, max_size=5),
       choice=st.data())
def test_no_spelling_of_a_protected_value_survives_masking(values, pieces, choice):
    assume(all(set(value) - {'*'} for value in values))  # a value made only of mask characters cannot be told apart
    quoted = [choice.draw(st.sampled_from(spellings(value))) for value in values]
    text = pieces[0] + ''.join(q + piece for q, piece in zip(quoted, pieces[1:] + [''] * len(quoted)))
    masked = secrets.Masker(values).text(text)
    for value in values:
        for spelling in spellings(value):
            assert spelling not in masked, (value, spelling, masked)


@settings(max_examples=200, deadline=None)
@given(value=secret_text, before=filler, after=filler, cut=st.integers(min_value=1))
def test_a_protected_value_cut_by_a_tail_leaves_no_piece(value, before, after, cut):
    assume(len(value) >= 2 and set(value) - {'*'})
    cut = 1 + cut % (len(value) - 1)  # the tail starts inside the value
    tail = value[cut:] + after
    masked = secrets.Masker([value]).text(tail, cut_start=True)
    assert not masked.startswith(value[cut:]) or value[cut:] in secrets.MASK
    head = before + value[:cut]
    masked = secrets.Masker([value]).text(head, cut_end=True)
    assert not masked.endswith(value[:cut]) or value[:cut] in secrets.MASK


def test_protected_values_of_a_batch_and_its_experiment():
    image_auth = {'username': 'reg-user', 'password': 'reg-pw', 'auth': 'YWxpY2U6cHc=', 'identitytoken': 'idt',
                  'registrytoken': 'rt', '_email': 'a@b'}
    values = secrets.protected_values(IO, image_auth, {'url': 'x', 'auth': {'password': 'exec-pw'}})
    assert values == {'pw', 'alice', 'k', 'pw2', 't', 'reg-pw', 'YWxpY2U6cHc=', 'idt', 'rt', 'a@b', 'exec-pw'}


def test_masker_masks_every_string_of_agent_data_and_keeps_the_rest():
    masker = secrets.Masker(['https://h/x?sig=S1gn3d%2F'])
    result = {'state': 'failed', 'debugInfo': ['GET https://h/x?sig=S1gn3d%2F failed: 403'],
              'process': {'returnCode': 1},
              'stderr': 'url=https%3A%2F%2Fh%2Fx%3Fsig%3DS1gn3d%252F', 'nested': [{'u': '"https://h/x?sig=S1gn3d%2F"'}]}
    masked = masker.data(result)
    assert 'S1gn3d' not in json.dumps(masked)
    assert masked['debugInfo'] == ['GET ******** failed: 403'] and masked['process'] == {'returnCode': 1}


def test_image_auth_docker_keys_are_protected():
    auth = {'username': 'u', 'auth': 'dTpw', 'identitytoken': 'i', 'registrytoken': 'r', 'password': 'p', 'email': 'e'}
    assert secrets.replace_protected_image_auth(auth, None) == {
        'username': 'u', 'auth': None, 'identitytoken': None, 'registrytoken': None, 'password': None, 'email': 'e'}
