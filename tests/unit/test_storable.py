"""cc_agency.broker.storable: what it lets through, MongoDB stores and JSON carries back; the rest is named."""
import json

import bson
import pytest
from hypothesis import given, settings, strategies as st

from cc_agency.broker.storable import MAX_DEPTH, UnstorableError, check_storable

text = st.text(st.characters(blacklist_categories=[]), max_size=8)  # lone surrogates included
keys = text | st.sampled_from(['$set', 'a.b', 'x\0'])
scalars = (st.none() | st.booleans() | st.integers(min_value=-2 ** 70, max_value=2 ** 70)
           | st.floats(allow_nan=True, allow_infinity=True) | text)
json_values = st.recursive(scalars, lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(keys, children, max_size=4), max_leaves=20)


@settings(max_examples=300)
@given(json_values)
def test_whatever_passes_is_stored_and_read_back_as_json(value):
    try:
        check_storable(value)
    except UnstorableError:
        return
    stored = bson.decode(bson.encode({'v': value}))['v']
    json.dumps(stored, allow_nan=False)  # GET answers strict JSON


@pytest.mark.parametrize('value, path', [
    ({'a': [1, {'b': 2 ** 63}]}, 'a[1].b'),
    ({'a': -2 ** 63 - 1}, 'a'),
    ({'a': {'$where': 1}}, 'a'),
    ({'a': {'x\0y': 1}}, 'a'),
    ({'a': float('nan')}, 'a'),
    ({'a': [float('-inf')]}, 'a[0]'),
    ({'a': '\udc80'}, 'a'),
    ({'\ud800': 1}, '<top level>'),
    ({1: 'x'}, '<top level>'),
])
def test_unstorable_values_are_named_by_their_path(value, path):
    with pytest.raises(UnstorableError) as error:
        check_storable(value)
    assert str(error.value).startswith(path + ':')


def test_depth_is_bounded_without_recursion():
    deep = []
    for _ in range(100000):
        deep = [deep]
    with pytest.raises(UnstorableError, match='nested deeper than {}'.format(MAX_DEPTH)):
        check_storable({'doc': deep})
    shallow = []
    for _ in range(MAX_DEPTH - 1):
        shallow = [shallow]
    check_storable({'doc': shallow})


def test_edges_of_the_64_bit_range_pass():
    check_storable({'a': 2 ** 63 - 1, 'b': -2 ** 63, 'c': True, 'd': 1e308, 'e': 'ünï €'})
