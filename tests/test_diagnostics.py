"The decision table of plan 001 reads typed stage results: a failing check anywhere shows as failed."
from dataclasses import fields, replace

import pytest

from factored_timing.diagnostics import (CacheStage, DataloaderStage, ArchitectureStage, ProfileFit, TrainingStage,
                                         SamplerStage, IntegrationStage, decisions)
from factored_timing.timing_train import Acceptance


def passing():
    acc = Acceptance(**{f.name: True for f in fields(Acceptance)})
    return [CacheStage({'train': {}}, {}), DataloaderStage(16, .1, .1),
            ArchitectureStage(20, .1, {'direct': ProfileFit(-1., .1, .1), 'template': ProfileFit(-1., .7, .1)}),
            TrainingStage(3, (1., .5), (1., .6), [], False, .01, .02), SamplerStage(acc),
            IntegrationStage(True, .1, {'dt_median': .1}, {'dt_median': .1}, {'dt_median': 0.})]


def test_all_passing_stages_pass():
    d = decisions(*passing()).set_index('decision point')
    assert d.ok.all() and 'may be tuned' in d.loc['next step', 'branch']
    assert 'direct' in d.loc['architecture', 'branch']


@pytest.mark.parametrize('check', [f.name for f in fields(Acceptance)])
def test_one_missed_sampler_target_fails_the_sampler_stage(check):
    s = passing()
    s[4] = SamplerStage(replace(s[4].checks, **{check: False}))
    d = decisions(*s).set_index('decision point')
    assert not d.loc['sampler', 'ok'] and not d.loc['next step', 'ok']
    assert d.loc['next step', 'branch'] == 'fix first: sampler'


def test_each_stage_is_read():
    s = passing()
    s[0] = CacheStage({}, {})
    s[3] = replace(s[3], collapse=True)
    s[5] = replace(s[5], ok=False)
    d = decisions(*s).set_index('decision point')
    assert list(d.ok) == [False, True, True, False, True, False, False]
    assert d.loc['next step', 'branch'] == 'fix first: cache integrity'


def test_acceptance_serialises_with_its_verdict():
    acc = Acceptance(**{f.name: True for f in fields(Acceptance)})
    assert acc.to_dict()['all'] is True and replace(acc, ks_D=False).to_dict()['all'] is False
