"""red-val's private validation steps (cc_agency/red_val_steps.py) fail loudly here when red-val changes."""
import copy
import importlib.metadata
import inspect

import hypothesis
import hypothesis.strategies
import pytest
from red_val import red_validation as red_val_module
from red_val.exceptions import CWLSpecificationError, RedSpecificationError, RedValidationError
from red_val.red_variables import RedVariableError, get_variable_keys

from cc_agency import red_val_steps
from cc_agency.red import validate_red
from tests import reds

RED_VAL_ERRORS = (RedValidationError, RedSpecificationError, CWLSpecificationError, RedVariableError)


def test_red_val_is_the_version_the_steps_were_taken_from():
    assert importlib.metadata.version('red-val') == red_val_steps.RED_VAL_VERSION
    source = inspect.getsource(red_val_module.red_validation)
    for name in red_val_steps.PRIVATE_STEPS:
        assert callable(getattr(red_val_module, name)), name
        assert name + '(' in source, 'red_validation no longer calls {}'.format(name)


def _variants():
    good = reds.red([reds.batch('http://127.0.0.1:1')])
    wrong_type = copy.deepcopy(good)
    wrong_type['batches'][0]['inputs']['infile'] = 7
    absolute_glob = copy.deepcopy(good)
    for spec in absolute_glob['cli']['outputs'].values():
        spec['outputBinding'] = {'glob': '/etc/passwd'}
    with_variable = copy.deepcopy(good)
    with_variable['batches'][0]['inputs']['word'] = '{{word}}'
    return {'good': good, 'wrong type': wrong_type, 'absolute glob': absolute_glob, 'variable': with_variable}


@pytest.mark.parametrize('name', sorted(_variants()))
def test_the_fast_validation_agrees_with_red_validation(name):
    red = _variants()[name]

    def verdict(check):
        try:
            check(copy.deepcopy(red))
            return None
        except RED_VAL_ERRORS as e:
            return type(e).__name__

    reference = verdict(lambda r: red_val_module.red_validation(r, ignore_outputs=False, container_requirement=True,
                                                                allow_variables=False))
    assert verdict(validate_red) == reference
    assert (reference is None) == (name == 'good')


KEYS = hypothesis.strategies.sampled_from(['a', 'password', 'privateKey', '_token', 'access', 'auth', 'url'])
TEXTS = hypothesis.strategies.sampled_from(['x', '{{word}}', 'a}}b', '{{', 'plain {text}', ''])
TREES = hypothesis.strategies.recursive(
    TEXTS | hypothesis.strategies.integers(0, 3) | hypothesis.strategies.none(),
    lambda children: hypothesis.strategies.lists(children, max_size=3)
    | hypothesis.strategies.dictionaries(KEYS, children, max_size=3), max_leaves=12)


@hypothesis.given(TREES)
def test_the_quick_walk_agrees_with_red_vals_variable_check(tree):
    """without_variables is only a shortcut past red-val's walk: where it says True, red-val finds no variable and
    raises nothing; where it says False, red-val reports something (a variable, or an error)."""
    red = {'batches': [tree]}
    try:
        found = get_variable_keys(red)
    except RedVariableError:
        found = None
    assert red_val_steps.without_variables(red) == (found == [])


def test_the_quick_walk_sees_brackets_and_misplaced_protected_keys():
    assert red_val_steps.without_variables({'batches': [{'inputs': {'word': 'plain {text}'}}]})
    assert red_val_steps.without_variables({'a': {'access': {'password': 'p', '_t': 'x'}}})
    assert not red_val_steps.without_variables({'batches': [{'inputs': {'word': '{{word}}'}}]})
    assert not red_val_steps.without_variables({'batches': [{'inputs': {'word': 'a}}'}}]})
    assert not red_val_steps.without_variables({'inputs': {'password': 'p'}})  # red-val refuses it there


CLI_TYPES = hypothesis.strategies.sampled_from(['File', 'Directory', 'string', 'int', 'float', 'boolean', 'File[]',
                                                'string[]', 'int?', 'File?', 'Directory[]?'])
JOB_VALUES = hypothesis.strategies.recursive(
    hypothesis.strategies.sampled_from(['x', 'y', 1, 2, 1.5, True, None, {'class': 'File'}, {'class': 'Directory'},
                                        {'class': 'Other'}, {'class': 3}, {}]),
    lambda children: hypothesis.strategies.lists(children, max_size=3), max_leaves=6)


def _first_failure(check):
    try:
        check()
        return None
    except RedSpecificationError as e:
        return str(e)


@hypothesis.settings(max_examples=300)
@hypothesis.given(hypothesis.strategies.lists(hypothesis.strategies.tuples(CLI_TYPES, JOB_VALUES), min_size=1,
                                              max_size=4),
                  hypothesis.strategies.lists(hypothesis.strategies.lists(JOB_VALUES, min_size=4, max_size=4),
                                              min_size=1, max_size=6),
                  hypothesis.strategies.sampled_from(['File', 'Directory', 'stdout', 'File?']),
                  hypothesis.strategies.lists(JOB_VALUES, min_size=6, max_size=6))
def test_checking_each_type_signature_once_fails_where_red_val_fails_first(inputs, rows, output_type, outputs):
    """check_types gives the first failure, and its message, of red-val's check of every pair in turn."""
    red = {'cli': {'inputs': {'in{}'.format(i): {'type': t} for i, (t, _) in enumerate(inputs)},
                   'outputs': {'out': {'type': output_type}}},
           'batches': [{'inputs': {'in{}'.format(i): row[i % len(row)] for i in range(len(inputs))},
                        'outputs': {'out': outputs[index]}} for index, row in enumerate(rows)]}
    input_pairs, output_pairs = red_val_module._create_cli_job_pairs(red, False)
    pairs = input_pairs + output_pairs

    def each():
        for pair in pairs:
            pair.check_type()

    assert _first_failure(lambda: red_val_steps.check_types(pairs)) == _first_failure(each)


def test_type_signatures_tell_apart_what_red_val_tells_apart():
    signature = red_val_steps.type_signature
    assert signature('a') == signature('b') and signature([1, 2]) == signature([3, 4])
    assert signature(1) != signature(True) != signature(1.0)
    assert signature([1]) != signature([1, 'a']) != signature(['a', 1])
    assert signature({'class': 'File'}) != signature({'class': 'Directory'}) != signature({})


@hypothesis.settings(max_examples=500)
@hypothesis.given(hypothesis.strategies.booleans(), CLI_TYPES, JOB_VALUES, JOB_VALUES)
def test_values_of_equal_signatures_get_equal_verdicts(is_input, cli_type, value, other):
    """The property check_types stands on (outputs are checked against output types only)."""
    if not is_input:
        cli_type = {'File[]': 'File', 'string[]': 'stdout', 'int?': 'File?'}.get(cli_type, 'Directory')
    hypothesis.assume(red_val_steps.type_signature(value) == red_val_steps.type_signature(other))

    def passes(job_value):
        pair = red_val_module.CliJobPair('key', is_input, {'type': cli_type}, job_value)
        return _first_failure(pair.check_type) is None

    assert passes(value) == passes(other)
