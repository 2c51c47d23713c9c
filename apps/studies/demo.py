"""The demo study: the paper's three experiments at demo size (PROTOCOL §4).

Built on the generated dataset and the demo CNN, so it needs no download and
no GPU. Every builder here is idempotent: running the demo twice finds the
family, the study and its experiments again instead of duplicating them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction

from apps.pipeline.models import ModelFamily, PipelineJob
from apps.pipeline.services import family_build, family_create
from apps.studies.models import Experiment, Study
from apps.studies.services import experiment_create, study_create, study_launch

DEMO_FAMILY_SLUG = "demo-shapes"
DEMO_STUDY_SLUG = "less-is-more-demo"

PRESTUDY_PAIRS = [["cpr1", "cpr2"], ["cpr1", "cpr32"]]
EXP1_PAIRS = [
    ["cpr1", "cpr2"],
    ["cpr1", "cpr4"],
    ["cpr1", "cpr8"],
    ["cpr2", "cpr4"],
    ["cpr2", "cpr8"],
    ["cpr4", "cpr8"],
]
EXP2_CONDITIONS = ["cpr1", "cpr2", "cpr4", "cpr8", "cpr32"]


def demo_experiments(*, images_per_class: int, answers_per_task: int) -> list[dict[str, Any]]:
    common = {"images_per_class": images_per_class, "answers_per_task": answers_per_task}
    return [
        {
            "slug": "prestudy-heat",
            "name": "Pre-study: heat-maps (CPR 1 vs 2, 1 vs 32)",
            "kind": Experiment.Kind.PAIRWISE,
            "scale_points": 3,
            "stimulus_kind": "heat",
            "pairs": PRESTUDY_PAIRS,
            "tasks_per_rater": 10,
            **common,
        },
        {
            "slug": "prestudy-occlusion",
            "name": "Pre-study: occlusion-maps (CPR 1 vs 2, 1 vs 32)",
            "kind": Experiment.Kind.PAIRWISE,
            "scale_points": 3,
            "stimulus_kind": "occlusion",
            "pairs": PRESTUDY_PAIRS,
            "tasks_per_rater": 10,
            **common,
        },
        {
            "slug": "exp1",
            "name": "Experiment 1: heat-maps, all pairs of CPR 1, 2, 4, 8",
            "kind": Experiment.Kind.PAIRWISE,
            "scale_points": 5,
            "stimulus_kind": "heat",
            "pairs": EXP1_PAIRS,
            "tasks_per_rater": 10,
            **common,
        },
        {
            "slug": "exp2",
            "name": "Experiment 2: occlusion-maps, classify (CPR 1, 2, 4, 8, 32)",
            "kind": Experiment.Kind.FORCED_CHOICE,
            "stimulus_kind": "occlusion",
            "conditions": EXP2_CONDITIONS,
            "tasks_per_rater": 10,
            **common,
        },
    ]


def demo_family(*, config: dict[str, Any] | None = None) -> ModelFamily:
    family = ModelFamily.objects.filter(slug=DEMO_FAMILY_SLUG).first()
    if family is None:
        family = family_create(
            name="Demo: generated shapes, demo VGG",
            slug=DEMO_FAMILY_SLUG,
            cprs=[2, 4, 8, 16, 32],
            # one image per class beyond the experiments' 3: spare images for the worked
            # example and the practice trials, which no task may show
            config=config or {"images_per_class": 4},
        )
    return family


def demo_run_pipeline(
    *, family: ModelFamily, report: Callable[[str], None], poll_seconds: float = 2.0
) -> PipelineJob:
    """Build the demo family's models and maps (see :func:`family_build`)."""
    return family_build(family=family, report=report, poll_seconds=poll_seconds)


@transaction.atomic
def demo_study(*, family: ModelFamily, images_per_class: int, answers_per_task: int) -> Study:
    study = Study.objects.filter(slug=DEMO_STUDY_SLUG).first()
    if study is None:
        study = study_create(
            name="Less is More (demo)",
            slug=DEMO_STUDY_SLUG,
            family=family,
            description="The pre-study and both experiments of Weber et al., at demo size.",
        )
    existing = set(study.experiments.values_list("slug", flat=True))
    if study.status == Study.Status.DRAFT:
        for spec in demo_experiments(
            images_per_class=images_per_class, answers_per_task=answers_per_task
        ):
            if spec["slug"] not in existing:
                experiment_create(study=study, **spec)
    return study_launch(study=study)
