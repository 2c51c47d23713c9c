"""The rater loop's next step: the task on screen, a new one, wait, or the end.

:func:`next_step` is the one place that decides what a participation gets
next; ``assignment_next`` (a page load, ``GET …/next``) and
``response_submit`` (an answer) both end with it, inside their transaction
and with the participation row locked. Every state has one clear outcome,
and a task is only ever returned while the rater holds a lease on it, so no
path hands out the same unanswerable task twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from django.conf import settings
from django.db import transaction

from apps.core import clock
from apps.core.exceptions import NotFoundError
from apps.studies import allocation
from apps.studies.lock_objects import participation_for_update
from apps.studies.models import Assignment, Participation, Study


class State(StrEnum):
    TASK = "task"  # answer this task
    WAIT = "wait"  # every task left for you is on someone's screen; ask again soon
    PAUSED = "paused"  # the researchers paused the study; ask again later
    DONE = "done"  # complete, or nothing left for you
    CLOSED = "closed"  # the study is closed


@dataclass(frozen=True)
class NextStep:
    state: State
    participation: Participation
    assignment: Assignment | None = None
    lease_expires_at: datetime | None = None
    retry_after: int | None = None


def claimant_for(participation: Participation) -> allocation.Claimant:
    experiment = participation.experiment
    study = experiment.study
    return allocation.Claimant(
        participation_id=participation.pk,
        rater_id=participation.rater_id,
        experiment_id=experiment.pk,
        one_per_image=experiment.one_task_per_image,
        across_study_id=study.pk if study.one_task_per_image_across_experiments else None,
    )


def _finish(participation: Participation, *, now: datetime) -> None:
    """Complete (with at least one answer) or exhausted (none); gives back any lease."""
    if participation.current_assignment_id is not None:
        allocation.lease_release(
            assignment=participation.current_assignment, participation_id=participation.pk
        )
        participation.current_assignment = None
    participation.status = (
        Participation.Status.COMPLETED if participation.answered else Participation.Status.EXHAUSTED
    )
    participation.completed_at = now


def _save(participation: Participation) -> None:
    participation.save(
        update_fields=["status", "answered", "current_assignment", "completed_at", "updated_at"]
    )


def next_step(participation: Participation, *, now: datetime, dirty: bool = False) -> NextStep:
    """Decide, and do, what ``participation`` gets next. Saves it if anything changed.

    Lock precondition: ``participation`` comes from ``participation_for_update``
    in the caller's transaction. ``dirty`` says the caller changed it already.
    """
    experiment = participation.experiment
    status = experiment.study.status
    if status == Study.Status.CLOSED:
        return NextStep(State.CLOSED, participation)
    if participation.status != Participation.Status.ACTIVE:
        if dirty:
            _save(participation)
        return NextStep(State.DONE, participation)
    target_reached = participation.answered >= participation.target
    if participation.current_assignment_id is not None and not target_reached:
        current = participation.current_assignment
        expires = allocation.lease_renew(
            assignment=current,
            participation_id=participation.pk,
            lease_seconds=experiment.lease_seconds,
            now=now,
        )
        if expires is not None:
            if dirty:
                _save(participation)
            return NextStep(State.TASK, participation, current, lease_expires_at=expires)
        participation.current_assignment = None  # lost to another rater: move on
        dirty = True
    if target_reached:
        _finish(participation, now=now)
        _save(participation)
        return NextStep(State.DONE, participation)
    if status == Study.Status.PAUSED:
        if dirty:
            _save(participation)
        return NextStep(
            State.PAUSED, participation, retry_after=settings.RATER_PAUSED_RETRY_SECONDS
        )
    claimant = claimant_for(participation)
    assignment = allocation.slot_claim(
        claimant=claimant, lease_seconds=experiment.lease_seconds, now=now
    )
    if assignment is not None:
        participation.current_assignment = assignment
        _save(participation)
        expires = now + timedelta(seconds=experiment.lease_seconds)
        return NextStep(State.TASK, participation, assignment, lease_expires_at=expires)
    if allocation.work_remains(claimant=claimant):
        if dirty:
            _save(participation)
        return NextStep(State.WAIT, participation, retry_after=settings.RATER_WAIT_RETRY_SECONDS)
    _finish(participation, now=now)
    _save(participation)
    return NextStep(State.DONE, participation)


@transaction.atomic
def assignment_next(*, participation_id: int) -> NextStep:
    """The rater's current task (its lease renewed), a newly claimed one, or where to go."""
    participation = participation_for_update(participation_id=participation_id)
    return next_step(participation, now=clock.now())


def participation_assignment(*, participation: Participation, assignment_id: str) -> Assignment:
    """One of the participation's own assignments, by its public id; 404 otherwise.

    Its task and its response (if any: ``assignment.response``) come in the same query.
    """
    assignment = (
        Assignment.objects.select_related("task", "response")
        .filter(public_id=assignment_id, participation_id=participation.pk)
        .first()
    )
    if assignment is None:
        raise NotFoundError("Unknown task; reload the page.", code="unknown_assignment")
    return assignment


@transaction.atomic
def assignment_heartbeat(*, participation_id: int, assignment_id: str) -> datetime | None:
    """Extend the lease while the rater is on the task; the new expiry, or ``None``.

    ``None``: the task is no longer the rater's current one, the study is
    closed, or another rater took its last free slot meanwhile (an answer
    is still stored, flagged late).
    """
    participation = participation_for_update(participation_id=participation_id)
    assignment = participation_assignment(participation=participation, assignment_id=assignment_id)
    experiment = participation.experiment
    if (
        experiment.study.status == Study.Status.CLOSED
        or participation.current_assignment_id != assignment.pk
    ):
        return None
    return allocation.lease_renew(
        assignment=assignment,
        participation_id=participation.pk,
        lease_seconds=experiment.lease_seconds,
        now=clock.now(),
    )
