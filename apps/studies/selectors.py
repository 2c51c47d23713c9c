"""Reads for studies. These own ``select_related``/``prefetch_related``.

``assignment_presentation`` is the only place that decides what a rater sees
of a task: opaque image URLs, the predicted class, the options. It never
includes a variant label, a CPR or a method. It and ``own_assignment`` run on
every rater request and are hand-written SQL (:mod:`apps.core.rawsql`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from django.core.files.storage import default_storage
from django.db.models import Count, Q

from apps.core import clock, rawsql
from apps.pipeline.models import SourceImage, Stimulus
from apps.studies.models import (
    Assignment,
    CheckItem,
    Experiment,
    Participation,
    Response,
    Slot,
    Study,
    Task,
)
from apps.studies.scales import attention_question, forced_choice_labels, pairwise_labels


def _url(name: str) -> str:
    return default_storage.url(name)


@dataclass(frozen=True)
class OwnAssignment:
    """One of a participation's assignments, with what answering it needs."""

    assignment: Assignment
    left_is_a: bool | None  # the task's side (pairwise), for encoding the answer
    response: Response | None  # the stored answer, if any


_ASSIGNMENT = rawsql.Columns(Assignment, "a")
_RESPONSE = rawsql.Columns(Response, "r")


@functools.cache
def _own_assignment_sql(by: str) -> str:
    return (
        f"SELECT {_ASSIGNMENT.sql}, t.left_is_a, {_RESPONSE.sql}"
        f" FROM {rawsql.table(Assignment)} a JOIN {rawsql.table(Task)} t ON t.id = a.task_id"
        f" LEFT JOIN {rawsql.table(Response)} r ON r.assignment_id = a.id"
        f" WHERE a.{by} = %s AND a.participation_id = %s"
    )


def own_assignment(
    *, participation_id: int, public_id: str | None = None, pk: int | None = None
) -> OwnAssignment | None:
    """The participation's assignment by public id (or pk), its task's side and its answer."""
    by, key = (
        ("public_id", rawsql.prep(Assignment, "public_id", public_id)) if pk is None else ("id", pk)
    )
    row = rawsql.fetch_one(_own_assignment_sql(by), [key, participation_id])
    if row is None:
        return None
    n = len(_ASSIGNMENT)
    assignment = _ASSIGNMENT.build(row[:n])
    return OwnAssignment(assignment, row[n], _RESPONSE.build(row[n + 1 :]))


@functools.cache
def _presentation_sql() -> str:
    return (
        "SELECT t.left_is_a, i.file, sa.file, sa.predicted_class, sb.file"
        f" FROM {rawsql.table(Task)} t"
        f" JOIN {rawsql.table(SourceImage)} i ON i.id = t.image_id"
        f" JOIN {rawsql.table(Stimulus)} sa ON sa.id = t.stimulus_a_id"
        f" LEFT JOIN {rawsql.table(Stimulus)} sb ON sb.id = t.stimulus_b_id"
        " WHERE t.id = %s"
    )


def _task_presentation(
    task_id: int, experiment: Experiment, *, side: bool | None = None, **first: Any
) -> dict[str, Any]:
    """``side``: show A on the left (``True``) or right, instead of the task's own side."""
    left_is_a, image_file, file_a, predicted_a, file_b = rawsql.fetch_one(
        _presentation_sql(), [task_id]
    )
    if side is not None:
        left_is_a = side
    class_names = list(experiment.study.family.class_names)
    if experiment.is_pairwise:
        assert experiment.scale_points is not None
        left, right = (file_a, file_b) if left_is_a else (file_b, file_a)
        return {
            **first,
            "kind": "pairwise",
            "left_url": _url(left),
            "right_url": _url(right),
            "original_url": _url(image_file),
            "predicted_class": class_names[predicted_a],
            "options": list(pairwise_labels(experiment.scale_points)),
        }
    return {
        **first,
        "kind": "forced_choice",
        "map_url": _url(file_a),
        "options": list(forced_choice_labels(class_names)),
    }


def assignment_presentation(*, assignment: Assignment, experiment: Experiment) -> dict[str, Any]:
    """What the rater sees of the assignment's task; ``experiment`` is the task's, loaded."""
    return _task_presentation(
        assignment.task_id, experiment, assignment_id=str(assignment.public_id)
    )


def check_presentation(*, item: CheckItem, experiment: Experiment) -> dict[str, Any]:
    """What the rater sees of a check item: its task's maps, as the item shows them.

    A probe looks exactly like a task (sides swapped on pairwise experiments).
    An attention check's question names the option to choose, so it carries
    a ``question`` that replaces the page's usual one.
    """
    assert item.task_id is not None
    shown = _task_presentation(
        item.task_id, experiment, side=item.left_is_a, assignment_id=str(item.public_id)
    )
    if item.kind == CheckItem.Kind.ATTENTION:
        assert item.instructed_choice is not None
        label = shown["options"][item.instructed_choice]
        shown["question"] = attention_question(pairwise=experiment.is_pairwise, label=label)
    return shown


def example_presentation(*, experiment: Experiment) -> dict[str, Any] | None:
    """The experiment's first (non-catch) task as a rater would see it, for an MTurk preview.

    MTurk shows a HIT's page before the worker accepts it; the worker decides
    from it whether to take the HIT, so it shows a real task, read-only,
    through the same blinded presentation as the task page (no assignment,
    nothing written). ``experiment`` comes with its study and family loaded.
    """
    task_id = (
        Task.objects.filter(experiment=experiment, is_catch=False)
        .order_by("position", "pk")
        .values_list("pk", flat=True)
        .first()
    )
    return None if task_id is None else _task_presentation(task_id, experiment)


def study_detail(*, slug: str) -> Study:
    return Study.objects.select_related("family").get(slug=slug)


@dataclass(frozen=True)
class ExperimentProgress:
    experiment: Experiment
    n_tasks: int
    n_tasks_complete: int
    n_answers: int  # in-quota answers (filled slots)
    n_slots: int  # tasks x quota: the answers the experiment asks for
    n_leased: int  # tasks on a rater's screen right now (live leases)
    n_late: int  # answers that came after their lease ran out
    n_over_quota: int  # late answers kept outside the quota


def _per_experiment(rows, key: str = "experiment_id") -> dict[int, dict[str, int]]:
    return {row.pop(key): row for row in rows}


def experiment_progress(*, study: Study) -> list[ExperimentProgress]:
    """Per experiment: tasks, complete tasks, answers, live leases, late and over-quota answers.

    A handful of aggregate queries over the study's slots and responses (not
    one per experiment), for the admin and the results page.
    """
    experiments = list(study.experiments.order_by("position", "pk"))
    ids = [e.pk for e in experiments]
    now = clock.now()
    slots = _per_experiment(
        Slot.objects.filter(experiment_id__in=ids)
        .values("experiment_id")
        .annotate(
            n_slots=Count("pk"),
            n_answers=Count("pk", filter=Q(is_answered=True)),
            n_leased=Count("pk", filter=Q(is_answered=False, lease_expires_at__gt=now)),
            n_tasks_open=Count("task_id", filter=Q(is_answered=False), distinct=True),
        )
        .order_by()
    )
    tasks = _per_experiment(
        Task.objects.filter(experiment_id__in=ids)
        .values("experiment_id")
        .annotate(n=Count("pk"))
        .order_by()
    )
    answers = _per_experiment(
        Response.objects.filter(task__experiment_id__in=ids)
        .values("task__experiment_id")
        .annotate(
            late=Count("pk", filter=Q(late=True)), over=Count("pk", filter=Q(over_quota=True))
        )
        .order_by(),
        key="task__experiment_id",
    )
    rows = []
    for experiment in experiments:
        s = slots.get(experiment.pk, {})
        n_tasks = tasks.get(experiment.pk, {}).get("n", 0)
        a = answers.get(experiment.pk, {})
        rows.append(
            ExperimentProgress(
                experiment=experiment,
                n_tasks=n_tasks,
                n_tasks_complete=n_tasks - s.get("n_tasks_open", 0),
                n_answers=s.get("n_answers", 0),
                n_slots=s.get("n_slots", 0),
                n_leased=s.get("n_leased", 0),
                n_late=a.get("late", 0),
                n_over_quota=a.get("over", 0),
            )
        )
    return rows


@dataclass(frozen=True)
class ParticipationEnd:
    """What the end page tells a rater: why it ended, what was stored, the code if earned."""

    reason: str  # "completed" | "exhausted" | "closed" | "active"
    answered: int
    remaining: int
    completion_code: str | None


def participation_end(*, participation: Participation) -> ParticipationEnd:
    """The completion code shows only for real completion (target reached, or nothing
    left after at least one answer) or, once the study is closed, for the work done."""
    study_closed = participation.experiment.study.status == Study.Status.CLOSED
    status = participation.status
    answered = participation.answered
    if status == Participation.Status.COMPLETED:
        reason = "completed"
    elif study_closed:
        reason = "closed"
    elif status == Participation.Status.EXHAUSTED:
        reason = "exhausted"
    else:
        reason = "active"
    earned = reason == "completed" or (reason == "closed" and answered > 0)
    return ParticipationEnd(
        reason=reason,
        answered=answered,
        remaining=max(participation.target - answered, 0) if reason == "active" else 0,
        completion_code=participation.completion_code if earned else None,
    )
