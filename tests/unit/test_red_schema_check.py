"""The schema check by batch shape (cc_agency/red_schema_check.py) gives the whole RED's verdict."""
import copy

import fastjsonschema
import hypothesis
import hypothesis.strategies as st
import pytest
from red_val.schemas.red import red_schema

from cc_agency import red_schema_check
from tests import reds

WHOLE = fastjsonschema.compile(red_schema)


def verdict(check, red):
    try:
        check(copy.deepcopy(red))
        return True
    except fastjsonschema.JsonSchemaException:
        return False


def test_the_values_kept_are_the_enumerated_fields_of_red_vals_schema():
    assert red_schema_check.VALUED_KEYS == {'class', 'mountProtocol'}


@pytest.mark.parametrize('batches_schema', [
    {'type': 'array', 'items': {'type': 'string', 'maxLength': 3}},  # a constraint that is no named property's
    {'type': 'array', 'items': {'type': 'object', 'dependencies': {'a': ['b']}}},  # a keyword shapes do not decide
    {'type': 'array', 'items': {'$ref': 'http://example.org/other.json'}},
])
def test_a_schema_whose_verdict_a_shape_cannot_decide_is_refused(batches_schema):
    schema = {'oneOf': [{'type': 'object', 'properties': {'batches': batches_schema}}]}
    with pytest.raises(red_schema_check.SchemaShapeError):
        red_schema_check.valued_keys(schema)


def test_values_under_a_named_constraint_are_found():
    schema = {'definitions': {'f': {'properties': {'mode': {'enum': ['a']}, 'n': {'type': 'integer', 'minimum': 1}}}},
              'oneOf': [{'properties': {'batches': {'items': {'anyOf': [{'$ref': '#/definitions/f'}]}}}}]}
    assert red_schema_check.valued_keys(schema) == {'mode', 'n'}


def test_shapes_keep_keys_types_whole_floats_and_enumerated_values():
    shape = red_schema_check.shape
    assert shape({'a': 'x', 'b': [1]}) == shape({'a': 'y', 'b': [2]})
    assert shape({'a': 'x'}) != shape({'b': 'x'})
    assert shape({'a': 1}) != shape({'a': True}) != shape({'a': 1.5})
    assert shape({'a': 1.0}) != shape({'a': 1.5})
    assert shape({'class': 'File'}) != shape({'class': 'Filex'})
    assert shape({'class': 1}) != shape({'class': True})
    assert shape({'class': {}}) != shape({'class': {}})  # an object where a value is enumerated: never shared
    assert shape({'a': [1, 2]}) != shape({'a': [1]})


def _base_batch():
    return reds.batch('http://127.0.0.1:9')


# variations of one batch that red-val's schema accepts or refuses, and values it does not look at
INPUT_VALUES = st.sampled_from([
    'text', 'other text', '', 7, 7.0, 2.5, True, None, [], ['a', 1], [{'class': 'File'}],
    {'class': 'File', 'connector': {'command': 'c', 'access': {}}},
    {'class': 'File', 'connector': {'command': 'c', 'access': {'url': 'u'}}, 'size': 3},
    {'class': 'File', 'connector': {'command': 'c', 'access': {}}, 'size': 3.0},
    {'class': 'File', 'connector': {'command': 'c', 'access': {}}, 'size': 3.5},
    {'class': 'File', 'connector': {'command': 'c', 'access': 'no object'}},
    {'class': 'File', 'connector': {'command': 'c'}},
    {'class': 'Files', 'connector': {'command': 'c', 'access': {}}},
    {'class': 'Directory', 'connector': {'command': 'c', 'access': {}},
     'listing': [{'class': 'File', 'basename': 'b'}, {'class': 'Directory', 'basename': 'd', 'listing': []}]},
    {'class': 'Directory', 'connector': {'command': 'c', 'access': {}},
     'listing': [{'class': 'Other', 'basename': 'b'}]},
    {'class': 'File', 'connector': {'command': 'c', 'access': {}}, 'unknown': 1},
])
OUTPUT_VALUES = st.sampled_from([
    {'class': 'File', 'connector': {'command': 'c', 'access': {'url': 'x'}}},
    {'class': 'File', 'connector': {'command': 'other', 'access': {'url': 'y'}}},
    {'class': 'stdout', 'connector': {'command': 'c', 'access': {}}},
    {'class': 'Directory', 'connector': {'command': 'c', 'access': {}}},
    {'class': 'File'}, 'text', 1,
])
KEYS = st.sampled_from(['infile', 'word', 'bad key!', 'times'])
CLOUDS = st.sampled_from([None, {'enable': False, 'mountDir': '/m'}, {'enable': True, 'mountDir': '/m',
                                                                      'mountProtocol': 'ssh'},
                          {'enable': False, 'mountDir': '/m', 'mountProtocol': 'ftp'}, {'enable': 'no'}])


@st.composite
def sweeps(draw):
    """A RED's batches: the base batch with the same changes (inputs, output, cloud, doc), and in each batch one
    value drawn anew, so that batches differ in a value or two, as a sweep's do."""
    inputs = draw(st.lists(st.tuples(KEYS, INPUT_VALUES), min_size=1, max_size=2))
    output, cloud, doc = draw(st.none() | OUTPUT_VALUES), draw(CLOUDS), draw(st.sampled_from([None, 'a doc', 3]))
    drawn = []
    for _ in range(draw(st.integers(0, 8))):
        changes, batch_output = list(inputs), output
        if draw(st.integers(0, 4)) == 0:
            batch_output = draw(OUTPUT_VALUES)
        else:
            index = draw(st.integers(0, len(changes) - 1))
            changes[index] = (changes[index][0], draw(INPUT_VALUES))
        batch = _base_batch()
        for key, value in changes:
            batch['inputs'][key] = copy.deepcopy(value)
        if batch_output is not None:
            batch['outputs']['result'] = copy.deepcopy(batch_output)
        for key, value in (('cloud', cloud), ('doc', doc)):
            if value is not None:
                batch[key] = copy.deepcopy(value)
        if draw(st.integers(0, 15)) == 0:
            batch = draw(st.sampled_from(['not a batch', None, [], {'outputs': {}}]))
        drawn.append(batch)
    return drawn


@hypothesis.settings(max_examples=500, deadline=None)
@hypothesis.given(sweeps())
def test_checking_one_batch_of_each_shape_gives_the_verdict_of_checking_all(drawn):
    red = reds.red([_base_batch()])
    red['batches'] = drawn
    assert verdict(red_schema_check.check, red) == verdict(WHOLE, red)


def _one_batch_red(batch):
    red = reds.red([_base_batch()])
    red['batches'] = [batch]
    return red


@hypothesis.settings(max_examples=1000, deadline=None)
@hypothesis.given(sweeps())
def test_batches_of_equal_shape_get_equal_verdicts(drawn):
    """The property the check stands on, batch by batch."""
    first_of_shape = {}
    for batch in drawn:
        first = first_of_shape.setdefault(red_schema_check.shape(batch), batch)
        assert verdict(WHOLE, _one_batch_red(batch)) == verdict(WHOLE, _one_batch_red(first))


def test_a_bad_batch_among_thousands_of_good_ones_is_found():
    red = reds.red([reds.batch('http://127.0.0.1:9', name='in{}.txt'.format(i)) for i in range(3000)])
    assert verdict(red_schema_check.check, red)
    red['batches'][2500]['inputs']['infile']['class'] = 'Fil'
    assert not verdict(red_schema_check.check, red)
    red['batches'][2500]['inputs']['infile']['class'] = 'File'
    red['batches'][2999]['outputs']['result']['connector']['access'] = []
    assert not verdict(red_schema_check.check, red)
