"""The rater loop's next step: the task on screen, a new one, wait, or the end.

:func:`next_step` is the one place that decides what a participation gets
next; ``assignment_next`` (a page load, ``GET …/next``) and
``response_submit`` (an answer) both end with it, inside their transaction
and with the participation row locked. Every state has one clear outcome,
and a task is only ever returned while the rater holds a lease on it, so no
path hands out the same unanswerable task twice.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from django.conf import settings
from django.db import transaction

from apps.core import clock, rawsql
from apps.core.exceptions import ApplicationError, NotFoundError
from apps.studies import allocation
from apps.studies.lock_objects import participation_for_update
from apps.studies.models import Assignment, CheckItem, Participation, Study
from apps.studies.selectors import own_assignment
from apps.studies.services.checks import check_due, check_for


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
    check: CheckItem | None = None  # an attention check or a probe instead of a task


def claimant_for(participation: Participation) -> allocation.Claimant:
    experiment = participation.experiment
    study = experiment.study
    return allocation.Claimant(
        participation_id=participation.pk,
        rater_id=participation.rater_id,
        experiment_id=experiment.pk,
        experiment_code=experiment.code,
        one_per_image=experiment.one_task_per_image,
        across_study_id=study.pk if study.one_task_per_image_across_experiments else None,
    )


def _finish(participation: Participation, *, now: datetime) -> None:
    """Complete (with at least one answer) or exhausted (none); gives back any lease."""
    if participation.current_assignment_id is not None:
        allocation.lease_release(
            assignment_id=participation.current_assignment_id, participation_id=participation.pk
        )
        participation.current_assignment_id = None
    participation.status = (
        Participation.Status.COMPLETED if participation.answered else Participation.Status.EXHAUSTED
    )
    participation.completed_at = now


@functools.cache
def _save_sql() -> str:
    return (
        f"UPDATE {rawsql.table(Participation)} SET status = %s, answered = %s,"
        " current_assignment_id = %s, completed_at = %s, updated_at = %s,"
        " next_check_after = %s, checks_planned = %s, checks_answered = %s WHERE id = %s"
    )


def _save(participation: Participation, *, now: datetime) -> None:
    """Write the fields the rater loop changes (one hand-written UPDATE: hot path)."""
    participation.updated_at = now
    rawsql.execute(
        _save_sql(),
        [
            participation.status,
            participation.answered,
            participation.current_assignment_id,
            rawsql.prep(Participation, "completed_at", participation.completed_at),
            rawsql.prep(Participation, "updated_at", now),
            participation.next_check_after,
            participation.checks_planned,
            participation.checks_answered,
            participation.pk,
        ],
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
            _save(participation, now=now)
        return NextStep(State.DONE, participation)
    target_reached = participation.answered >= participation.target
    if participation.current_assignment_id is not None and not target_reached:
        current = own_assignment(
            participation_id=participation.pk, pk=participation.current_assignment_id
        )
        assert current is not None
        expires = allocation.lease_renew(
            assignment=current.assignment,
            participation_id=participation.pk,
            lease_seconds=experiment.lease_seconds,
            now=now,
        )
        if expires is not None:
            if dirty:
                _save(participation, now=now)
            return NextStep(State.TASK, participation, current.assignment, lease_expires_at=expires)
        participation.current_assignment_id = None  # lost to another rater: move on
        dirty = True
    if target_reached or participation.excluded_at is not None:
        _finish(participation, now=now)
        _save(participation, now=now)
        return NextStep(State.DONE, participation)
    if (
        participation.next_check_after is not None
        and participation.answered >= participation.next_check_after
        and participation.current_assignment_id is None
    ):
        before = (participation.next_check_after, participation.checks_planned)
        check = check_due(participation, now=now)
        if check is not None:
            if dirty:
                _save(participation, now=now)
            return NextStep(State.TASK, participation, check=check, lease_expires_at=None)
        dirty = dirty or before != (participation.next_check_after, participation.checks_planned)
    if status == Study.Status.PAUSED:
        if dirty:
            _save(participation, now=now)
        return NextStep(
            State.PAUSED, participation, retry_after=settings.RATER_PAUSED_RETRY_SECONDS
        )
    claimant = claimant_for(participation)
    assignment = allocation.slot_claim(
        claimant=claimant, lease_seconds=experiment.lease_seconds, now=now
    )
    if assignment is not None:
        participation.current_assignment_id = assignment.pk
        _save(participation, now=now)
        expires = now + timedelta(seconds=experiment.lease_seconds)
        return NextStep(State.TASK, participation, assignment, lease_expires_at=expires)
    if allocation.work_remains(claimant=claimant):
        if dirty:
            _save(participation, now=now)
        return NextStep(State.WAIT, participation, retry_after=settings.RATER_WAIT_RETRY_SECONDS)
    _finish(participation, now=now)
    _save(participation, now=now)
    return NextStep(State.DONE, participation)


def locked_participation(participation_id: int) -> Participation:
    """``participation_for_update``; a participation that no longer exists ends the session."""
    try:
        return participation_for_update(participation_id=participation_id)
    except Participation.DoesNotExist:
        raise ApplicationError(
            "Your session has ended. Open the study link again to continue.",
            code="no_session",
            status_code=403,
        ) from None


@transaction.atomic
def assignment_next(*, participation_id: int) -> NextStep:
    """The rater's current task (its lease renewed), a newly claimed one, or where to go."""
    participation = locked_participation(participation_id)
    return next_step(participation, now=clock.now())


@transaction.atomic
def assignment_heartbeat(*, participation_id: int, assignment_id: str) -> datetime | None:
    """Extend the lease while the rater is on the task; the new expiry, or ``None``.

    ``None``: the task is no longer the rater's current one, the study is
    closed, or another rater took its last free slot meanwhile (an answer
    is still stored, flagged late).
    """
    participation = locked_participation(participation_id)
    experiment = participation.experiment
    own = own_assignment(participation_id=participation.pk, public_id=assignment_id)
    if own is None:
        # A check item holds no slot: nothing to renew, it stays the rater's.
        if check_for(participation=participation, public_id=assignment_id) is None:
            raise NotFoundError("Unknown task; reload the page.", code="unknown_assignment")
        if experiment.study.status == Study.Status.CLOSED:
            return None
        return clock.now() + timedelta(seconds=experiment.lease_seconds)
    assignment = own.assignment
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
