from __future__ import annotations

from apps.studies.identity import CrowdIdentity, new_browser_id
from apps.studies.models import Assignment, Experiment, Participation, Rater, Response, Study
from apps.studies.services import (
    State,
    SubmitOutcome,
    assignment_next,
    experiment_create,
    rater_join,
    response_submit,
    study_create,
    study_launch,
)
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
    **experiment_kwargs,
) -> Study:
    family = family_with_stimuli(
        slug=f"fam-{slug}", images_per_class=images_per_class, **(family_kwargs or {})
    )
    study = study_create(name=f"Study {slug}", slug=slug, family=family, seed=7)
    # Checks and practice off unless a test asks for them: most tests count tasks exactly.
    common = {
        "images_per_class": images_per_class,
        "answers_per_task": answers_per_task,
        "tasks_per_rater": tasks_per_rater,
        "attention_checks": 0,
        "probe_percent": 0,
        "catch_percent": 0,
        "practice_trials": 0,
        **experiment_kwargs,
    }
    experiment_create(
        study=study,
        slug="pw",
        name="Pairwise",
        kind=Experiment.Kind.PAIRWISE,
        scale_points=5,
        stimulus_kind="heat",
        pairs=[list(p) for p in pairs],
        **common,
    )
    experiment_create(
        study=study,
        slug="fc",
        name="Forced choice",
        kind=Experiment.Kind.FORCED_CHOICE,
        stimulus_kind="occlusion",
        conditions=list(conditions),
        **common,
    )
    return study_launch(study=study)


def join(
    experiment: Experiment,
    *,
    source: str = Rater.Source.LINK,
    worker_id: str | None = None,
    session: dict[str, str] | None = None,
    browser: str | None = None,
) -> Participation:
    """A rater joins from their own browser (a new one unless ``browser`` is given)."""
    return rater_join(
        experiment=experiment,
        identity=CrowdIdentity(source, worker_id, dict(session or {})),
        browser=browser or new_browser_id(),
    )


def next_task(participation: Participation) -> Assignment | None:
    step = assignment_next(participation_id=participation.pk)
    return step.assignment if step.state == State.TASK else None


def answer(
    participation: Participation,
    assignment: Assignment,
    choice: int = 2,
    *,
    response_ms: int | None = None,
) -> SubmitOutcome:
    return response_submit(
        participation_id=participation.pk,
        assignment_id=str(assignment.public_id),
        choice=choice,
        response_ms=response_ms,
    )


def answer_one(participation: Participation, choice: int = 2, **kwargs) -> Response:
    assignment = next_task(participation)
    assert assignment is not None, "no task for this rater"
    return answer(participation, assignment, choice, **kwargs).response


def answer_all(participation: Participation, choice: int = 2) -> int:
    """Answer until the rater has no task left; returns how many were answered."""
    answered = 0
    while (assignment := next_task(participation)) is not None:
        answer(participation, assignment, choice)
        answered += 1
    return answered
