"""Wall-clock limits: which limit a run gets from the RED and the operator's default and cap; the RED's field."""
import pytest

from cc_agency.red import RedError, parse_red
from cc_agency.timelimits import TimeLimits, time_limit_reason
from tests.reds import red_of


def experiment(limit_s=None):
    return {'execution': {'settings': {} if limit_s is None else {'timeLimitSeconds': limit_s}}}


@pytest.mark.parametrize('requested, default, cap, limit', [
    (None, None, None, None),  # nobody asks for a limit: none
    (30, None, None, 30),
    (None, 60, None, 60),  # the operator's default for REDs without one
    (30, 60, None, 30),  # the RED's own wins over the default
    (600, None, 120, 120),  # cut to the cap
    (None, None, 120, 120),  # a cap alone limits every run
    (None, 600, 120, 120),
    (30, 60, 120, 30),
])
def test_the_limit_of_a_run(requested, default, cap, limit):
    assert TimeLimits(default, cap).for_experiment(experiment(requested)) == limit


def test_an_experiment_without_execution_settings_gets_the_default():
    assert TimeLimits(default_s=5).for_experiment({}) == 5
    assert TimeLimits(default_s=5).for_experiment({'execution': {'settings': None}}) == 5


def test_the_reason_names_the_limit():
    assert time_limit_reason(3) == 'time limit of 3 s exceeded'


@pytest.mark.parametrize('value', [0, -1, 2.5, '60'])
def test_a_red_with_a_wrong_time_limit_is_refused_with_the_field(value):
    red = red_of(1)
    red['execution'] = {'engine': 'ccagency', 'settings': {'timeLimitSeconds': value}}
    with pytest.raises(RedError, match='execution.settings.timeLimitSeconds'):
        parse_red(red)


def test_a_red_time_limit_is_kept_with_the_experiment():
    red = red_of(1)
    red['execution'] = {'engine': 'ccagency', 'settings': {'timeLimitSeconds': 60}}
    stored = parse_red(red)
    assert TimeLimits().for_experiment(stored[0]) == 60
