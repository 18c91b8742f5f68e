"""red-val's checks after its JSON schema, as red-val's `red_validation` runs them: the one place that uses its
private functions.

Why: `red_validation` validates the schema with jsonschema first, which takes seconds for a RED of 10,000 batches;
cc_agency.red compiles that schema once with fastjsonschema instead and then needs red-val's remaining steps on
their own. red-val 9.3.0 (pinned in setup.py) has them only as private functions (`_create_cli_job_pairs`,
`_check_output_glob`). tests/unit/test_red_val_steps.py fails loudly when red-val changes: another version, these
functions gone, `red_validation` no longer calling them, or a verdict that differs from `red_validation`'s.
"""
from red_val import red_validation as red_val_module
from red_val.exceptions import RedSpecificationError
from red_val.red_variables import (PRIVATE_KEYS, VARIABLE_SEPARATOR_END, VARIABLE_SEPARATOR_START, RedVariableError,
                                   get_variable_keys, is_protected_key)

RED_VAL_VERSION = '9.3.0'  # the version these steps were taken from
PRIVATE_STEPS = ('_create_cli_job_pairs', '_check_output_glob')


def check_keys_are_strings(red):
    red_val_module.check_keys_are_strings(red)


def without_variables(red):
    """True when red-val's `get_variable_keys(red)` finds nothing and raises nothing: no string holds a variable's
    bracket, no protected key is outside `access`/`auth` -- red-val's own rules, walked without its error texts (it
    formats the path of every value it passes: a third of a 10,000-batch POST /red's validation). False: ask red-val
    (for its verdict and message). Pure."""
    stack = [(red, False, False)]
    while stack:
        data, allowed, protected = stack.pop()
        if isinstance(data, dict):
            for key, value in data.items():
                sub_allowed, sub_protected = allowed or key in PRIVATE_KEYS, protected or is_protected_key(key)
                if sub_protected and not sub_allowed:
                    return False
                stack.append((value, sub_allowed, sub_protected))
        elif isinstance(data, list):
            stack.extend((item, allowed, protected) for item in data)
        elif isinstance(data, str) and (VARIABLE_SEPARATOR_START in data or VARIABLE_SEPARATOR_END in data):
            return False
    return True


def type_signature(value):
    """What red-val's check of a job value against its CLI type looks at: None or not, a list or not, each item's
    exact Python type and, of an object, its `class`. Values of equal signatures get equal verdicts (pure)."""
    if isinstance(value, list):
        return (list,) + tuple(type_signature(item) for item in value)
    if isinstance(value, dict):
        kind = value.get('class')
        return dict, kind if isinstance(kind, str) or kind is None else object()
    return type(value)


def check_types(pairs):
    """red-val's `check_type` of each CLI/job pair, in order, once per (input or output, CLI type, signature):
    red-val parses the CLI type again for every pair, a fifth of a 10,000-batch RED's validation. A pair skipped
    would have passed, so the first failure, and its message, are red-val's."""
    passed = set()
    for pair in pairs:
        cli_type = pair.cli_description.get('type')
        key = (pair.is_input, cli_type if isinstance(cli_type, str) else object(), type_signature(pair.job_value))
        if key not in passed:
            pair.check_type()
            passed.add(key)


def checks_after_schema(red):
    """red_validation(red, ignore_outputs=False, container_requirement=True, allow_variables=False) without its
    schema step: job values against the CLI's types, no variables, a container section, relative output globs."""
    input_pairs, output_pairs = red_val_module._create_cli_job_pairs(red, False)
    check_types(input_pairs + output_pairs)
    variables = [] if without_variables(red) else get_variable_keys(red)
    if variables:
        raise RedVariableError('Red variables are forbidden, but found the following: {}'.format(
            [v.key for v in variables]))
    if not red.get('container'):
        raise RedSpecificationError('container engine description is missing in REDFILE')
    red_val_module._check_output_glob(red)
