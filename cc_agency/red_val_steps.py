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
from red_val.red_variables import RedVariableError, get_variable_keys

RED_VAL_VERSION = '9.3.0'  # the version these steps were taken from
PRIVATE_STEPS = ('_create_cli_job_pairs', '_check_output_glob')


def check_keys_are_strings(red):
    red_val_module.check_keys_are_strings(red)


def checks_after_schema(red):
    """red_validation(red, ignore_outputs=False, container_requirement=True, allow_variables=False) without its
    schema step: job values against the CLI's types, no variables, a container section, relative output globs."""
    input_pairs, output_pairs = red_val_module._create_cli_job_pairs(red, False)
    for pair in input_pairs + output_pairs:
        pair.check_type()
    variables = get_variable_keys(red)
    if variables:
        raise RedVariableError('Red variables are forbidden, but found the following: {}'.format(
            [v.key for v in variables]))
    if not red.get('container'):
        raise RedSpecificationError('container engine description is missing in REDFILE')
    red_val_module._check_output_glob(red)
