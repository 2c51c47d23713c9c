"""A small launched study on a given family (a pairwise and a forced-choice experiment)."""

from __future__ import annotations

from apps.pipeline.models import ModelFamily
from apps.studies.models import Experiment, Study
from apps.studies.services import experiment_create, study_create, study_launch


def study_on(
    family: ModelFamily,
    *,
    slug: str,
    pair: tuple[str, str],
    conditions: tuple[str, ...],
    images_per_class: int = 1,
    answers_per_task: int = 1,
    tasks_per_rater: int = 4,
) -> Study:
    """Checks and practice off; the family's images beyond ``images_per_class`` stay spare
    (the instructions' worked example takes one)."""
    study = study_create(name=f"Study {slug}", slug=slug, family=family, seed=7)
    common = {
        "images_per_class": images_per_class,
        "answers_per_task": answers_per_task,
        "tasks_per_rater": tasks_per_rater,
        "attention_checks": 0,
        "probe_percent": 0,
        "catch_percent": 0,
        "practice_trials": 0,
    }
    experiment_create(
        study=study, slug="pw", name="Pairwise", kind=Experiment.Kind.PAIRWISE, scale_points=5,
        stimulus_kind="heat", pairs=[list(pair)], **common,
    )  # fmt: skip
    experiment_create(
        study=study, slug="fc", name="Forced choice", kind=Experiment.Kind.FORCED_CHOICE,
        stimulus_kind="occlusion", conditions=list(conditions), **common,
    )  # fmt: skip
    return study_launch(study=study)
