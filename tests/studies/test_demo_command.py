"""`manage.py demo --no-serve` on the real pipeline (generated data, demo CNN).

Slow: it trains the demo model and prunes it five times (about a minute or
two on 2 cores). Run twice, it must neither fail nor duplicate anything.
"""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from apps.pipeline.models import ModelVariant, PipelineJob, SourceImage, Stimulus
from apps.studies.models import Experiment, Study, Task

# transaction=True: the job is dispatched on commit, as in production.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (ModelVariant, SourceImage, Stimulus, Study, Experiment, Task, PipelineJob)
    }


def test_demo_builds_the_three_experiments_and_is_idempotent():
    out = io.StringIO()
    call_command("demo", "--no-serve", stdout=out)
    text = out.getvalue()
    assert "/r/" in text and "admin / xai-crowd-demo" in text

    # the variants: CPR 1..32, measured CPR over conv weights within 0.1 %
    variants = list(ModelVariant.objects.order_by("cpr_target"))
    assert [v.label for v in variants] == ["cpr1", "cpr2", "cpr4", "cpr8", "cpr16", "cpr32"]
    for variant in variants:
        assert abs(variant.cpr_measured - variant.cpr_target) <= 0.001 * variant.cpr_target
    assert variants[0].test_accuracy >= 0.9

    # the study: pre-study (heat, occlusion), Experiment 1, Experiment 2 at 3 images per class
    study = Study.objects.get()
    experiments = {e.slug: e for e in study.experiments.all()}
    assert set(experiments) == {"prestudy-heat", "prestudy-occlusion", "exp1", "exp2"}
    real = {slug: e.tasks.filter(is_catch=False) for slug, e in experiments.items()}
    assert real["prestudy-heat"].count() == 2 * 30
    assert real["exp1"].count() == 6 * 30
    assert real["exp2"].count() == 5 * 30
    # plus the default 10 % catch trials, and spare images for the example and practice
    assert experiments["exp1"].tasks.filter(is_catch=True).count() == 18
    assert all(len(e.onboarding_images) == 1 + e.practice_trials for e in experiments.values())
    assert set(Task.objects.values_list("quota", flat=True)) == {3}
    # images shown are ones every variant classifies correctly
    for task in experiments["exp2"].tasks.select_related("image", "stimulus_a"):
        assert task.stimulus_a.predicted_class == task.image.class_index

    before = _counts()
    again = io.StringIO()
    call_command("demo", "--no-serve", stdout=again)
    assert "already finished" in again.getvalue()
    assert _counts() == before
