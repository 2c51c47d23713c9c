"""Storing answers: exactly once, never lost, never over a task's quota.

An answer to one of the rater's own assignments is stored whatever happened
to its lease (the rater did the work): in the slot they hold, else late in
any free slot of the task, else late and outside the quota, flagged so the
analysis can leave it out. It is refused only when the study is closed, when
the choice is invalid, when it came before the experiment's minimum viewing
time (``min_viewing_ms``, checked against ``response_ms``), or when the rater
already answered that task with a different choice (409 naming the stored
answer). The same answer again
returns the stored one, so a retried request never counts twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from django.db import transaction

from apps.core import clock, metrics
from apps.core.exceptions import ApplicationError, ConflictError, NotFoundError
from apps.studies import allocation
from apps.studies.models import CheckItem, Experiment, Participation, Response, Study
from apps.studies.scales import (
    forced_choice_answer,
    forced_choice_labels,
    pairwise_encode,
    pairwise_labels,
)
from apps.studies.selectors import own_assignment
from apps.studies.services.checks import check_answer, check_for
from apps.studies.services.serving import NextStep, locked_participation, next_step

RESPONSE_MS_MAX = 2**31 - 1


@dataclass(frozen=True)
class SubmitOutcome:
    response: Response | CheckItem
    created: bool  # False: the same answer was already stored
    next: NextStep


@dataclass(frozen=True)
class _Encoded:
    answer: str
    value: int | None
    answer_raw: str


def _encode(*, experiment: Experiment, left_is_a: bool | None, choice: int) -> _Encoded:
    try:
        if experiment.is_pairwise:
            assert left_is_a is not None and experiment.scale_points is not None
            value = pairwise_encode(
                scale_points=experiment.scale_points, choice=choice, left_is_a=left_is_a
            )
            return _Encoded(str(value), value, pairwise_labels(experiment.scale_points)[choice])
        class_names = list(experiment.study.family.class_names)
        return _Encoded(
            forced_choice_answer(class_names=class_names, choice=choice),
            None,
            forced_choice_labels(class_names)[choice],
        )
    except ValueError as exc:
        raise ApplicationError(
            f"choice: {exc}.", code="invalid_choice", extra={"field": "choice"}
        ) from None


def _stored(response: Response | CheckItem, *, choice: int) -> Response | CheckItem:
    """The stored answer, if ``choice`` is the same; a 409 naming it otherwise."""
    if response.choice != choice:
        raise ConflictError(
            f"You already answered this task with '{response.answer_raw}'; "
            "that answer is kept and the new choice was not stored.",
            code="answer_conflict",
            extra={"stored": {"choice": response.choice, "answer_raw": response.answer_raw}},
        )
    return response


def _check_viewing_time(experiment: Experiment, response_ms: int | None) -> None:
    """Refuse an answer given before the experiment's minimum viewing time.

    ``response_ms`` (display to answer, as the page measures it) is the viewing
    time, stored with the answer; the page keeps its buttons disabled until
    the minimum has passed, so only a script or a tampered page gets here.
    """
    minimum = experiment.min_viewing_ms
    if minimum and (response_ms is None or response_ms < minimum):
        raise ApplicationError(
            f"response_ms: this experiment asks raters to look at each task for at least "
            f"{minimum} ms before answering; the answer came after "
            f"{'an unknown time' if response_ms is None else f'{response_ms} ms'} "
            "and was not stored.",
            code="too_fast",
            extra={"field": "response_ms", "min_viewing_ms": minimum},
        )


def _check_response_ms(experiment: Experiment, response_ms: int | None) -> None:
    if response_ms is not None and not 0 <= response_ms <= RESPONSE_MS_MAX:
        raise ApplicationError(
            f"response_ms must be between 0 and {RESPONSE_MS_MAX}.",
            code="invalid",
            extra={"field": "response_ms"},
        )
    _check_viewing_time(experiment, response_ms)


def _refuse_if_closed(experiment: Experiment) -> None:
    if experiment.study.status == Study.Status.CLOSED:
        raise ConflictError(
            "This study has been closed, so this answer could not be stored. "
            "Your earlier answers are saved.",
            code="closed",
        )


def _check_submit(
    participation: Participation,
    public_id: str,
    choice: int,
    response_ms: int | None,
    *,
    now,
) -> SubmitOutcome:
    """The answer to an attention check or a probe (no slot, no quota; see ``checks``)."""
    item = check_for(participation=participation, public_id=public_id)
    if item is None:
        raise NotFoundError("Unknown task; reload the page.", code="unknown_assignment")
    experiment = participation.experiment
    if item.submitted_at is not None:
        return SubmitOutcome(_stored(item, choice=choice), False, next_step(participation, now=now))
    _refuse_if_closed(experiment)
    _check_response_ms(experiment, response_ms)
    encoded = _encode(experiment=experiment, left_is_a=item.left_is_a, choice=choice)
    check_answer(
        item,
        participation,
        choice=choice,
        answer=encoded.answer,
        value=encoded.value,
        answer_raw=encoded.answer_raw,
        response_ms=response_ms,
        now=now,
    )
    return SubmitOutcome(item, True, next_step(participation, now=now, dirty=True))


@transaction.atomic
def response_submit(
    *,
    participation_id: int,
    assignment_id: str,
    choice: int,
    response_ms: int | None = None,
) -> SubmitOutcome:
    """Store the answer to one of the rater's assignments, then decide their next step."""
    now = clock.now()
    participation = locked_participation(participation_id)
    own = own_assignment(participation_id=participation.pk, public_id=assignment_id)
    if own is None:
        return _check_submit(participation, assignment_id, choice, response_ms, now=now)
    assignment = own.assignment
    if own.response is not None:
        stored = _stored(own.response, choice=choice)
        return SubmitOutcome(stored, False, next_step(participation, now=now))
    experiment = participation.experiment
    _refuse_if_closed(experiment)
    _check_response_ms(experiment, response_ms)
    encoded = _encode(experiment=experiment, left_is_a=own.left_is_a, choice=choice)
    response = allocation.answer_place(
        assignment=assignment,
        participation_id=participation.pk,
        now=now,
        answer={
            "assignment_id": assignment.pk,
            "task_id": assignment.task_id,
            "rater_id": participation.rater_id,
            "choice": choice,
            "answer": encoded.answer,
            "value": encoded.value,
            "answer_raw": encoded.answer_raw,
            "response_ms": response_ms,
            "submitted_at": now,
            "reopened": False,
        },
    )
    participation.answered += 1
    transaction.on_commit(partial(metrics.answer_stored, experiment.kind))
    if participation.current_assignment_id == assignment.pk:
        participation.current_assignment_id = None
    return SubmitOutcome(response, True, next_step(participation, now=now, dirty=True))
