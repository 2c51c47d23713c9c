from __future__ import annotations

from apps.studies.models import Experiment, Study
from apps.studies.services import experiment_create, study_create, study_launch
from tests.factories import family_with_stimuli


def launched_study(
    *,
    slug: str = "s",
    images_per_class: int = 2,
    answers_per_task: int = 3,
    tasks_per_rater: int = 5,
    pairs=(("cpr1", "cpr2"), ("cpr4", "cpr1")),
    conditions=("cpr1", "cpr8"),
    family_kwargs: dict | None = None,
) -> Study:
    family = family_with_stimuli(
        slug=f"fam-{slug}", images_per_class=images_per_class, **(family_kwargs or {})
    )
    study = study_create(name=f"Study {slug}", slug=slug, family=family, seed=7)
    experiment_create(
        study=study,
        slug="pw",
        name="Pairwise",
        kind=Experiment.Kind.PAIRWISE,
        scale_points=5,
        stimulus_kind="heat",
        pairs=[list(p) for p in pairs],
        images_per_class=images_per_class,
        answers_per_task=answers_per_task,
        tasks_per_rater=tasks_per_rater,
    )
    experiment_create(
        study=study,
        slug="fc",
        name="Forced choice",
        kind=Experiment.Kind.FORCED_CHOICE,
        stimulus_kind="occlusion",
        conditions=list(conditions),
        images_per_class=images_per_class,
        answers_per_task=answers_per_task,
        tasks_per_rater=tasks_per_rater,
    )
    return study_launch(study=study)
