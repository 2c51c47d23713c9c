"""A study's life: launch (generate tasks, open), pause, resume, close.

draft -> live <-> paused -> closed. While paused raters keep the task on
their screen and may answer it, but nobody is given a new one; once closed
nothing is claimed or stored any more and every rater's page ends cleanly
(see :mod:`apps.studies.services.serving`).
"""

from __future__ import annotations

from django.db import transaction

from apps.core import clock
from apps.core.exceptions import ApplicationError, ConflictError
from apps.studies.models import Study
from apps.studies.services.generation import experiment_generate_tasks


def _locked(study: Study) -> Study:
    return Study.objects.select_for_update().get(pk=study.pk)


@transaction.atomic
def study_launch(*, study: Study) -> Study:
    """Generate every experiment's tasks and open the study to raters. Idempotent."""
    study = _locked(study)
    if study.status == Study.Status.CLOSED:
        raise ConflictError(f"Study '{study.slug}' is closed and cannot be launched again.")
    experiments = list(study.experiments.select_related("study__family"))
    if not experiments:
        raise ApplicationError(f"Study '{study.slug}' has no experiments to launch.")
    for experiment in experiments:
        experiment_generate_tasks(experiment=experiment)
    if study.status == Study.Status.DRAFT:
        study.status = Study.Status.LIVE
        study.launched_at = clock.now()
        study.save(update_fields=["status", "launched_at", "updated_at"])
    return study


def _move(study: Study, *, allowed_from: tuple[str, ...], to: str, verb: str) -> Study:
    study = _locked(study)
    if study.status == to:
        return study
    if study.status not in allowed_from:
        raise ConflictError(f"Study '{study.slug}' is {study.status}; it cannot be {verb}.")
    study.status = to
    fields = ["status", "updated_at"]
    if to == Study.Status.CLOSED:
        study.closed_at = clock.now()
        fields.append("closed_at")
    study.save(update_fields=fields)
    return study


@transaction.atomic
def study_pause(*, study: Study) -> Study:
    """Stop handing out tasks; answers to tasks already on screen are still stored."""
    return _move(study, allowed_from=(Study.Status.LIVE,), to=Study.Status.PAUSED, verb="paused")


@transaction.atomic
def study_resume(*, study: Study) -> Study:
    return _move(study, allowed_from=(Study.Status.PAUSED,), to=Study.Status.LIVE, verb="resumed")


@transaction.atomic
def study_close(*, study: Study) -> Study:
    """Stop for good: a rater request that starts after this commits claims and stores nothing.

    (A request already running when the close commits read the study as open
    and may finish, exactly as if it had come a moment earlier.)
    """
    return _move(
        study,
        allowed_from=(Study.Status.LIVE, Study.Status.PAUSED, Study.Status.DRAFT),
        to=Study.Status.CLOSED,
        verb="closed",
    )
