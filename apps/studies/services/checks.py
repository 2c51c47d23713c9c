"""Per-rater checks: attention checks and consistency probes (:class:`CheckItem`).

Catch trials are ordinary tasks (``Task.is_catch``, made at launch by
:mod:`.generation`) and go through the allocation like any task. The two
kinds here belong to one rater and take no slot:

- an **attention check** shows the maps of a task the rater already answered
  and a question that itself names the option to choose ("For this pair,
  choose 'Equally reasonable'."): an instructed-response item, the kind
  Prolific accepts as a fair ground for rejection;
- a **consistency probe** shows a task the rater answered earlier (not the
  one just before) a second time, sides swapped on pairwise experiments.

Both are planned when the participation starts (:func:`checks_plan`: random
positions, never the first task; a probe never before the third), served by
``serving.next_step`` when due (:func:`check_due`) and answered through
``answers.response_submit`` (:func:`check_answer`). They are exported with the
answers (``check_kind``, ``probe_of``, ``expected``) and never enter the
study's tables.
"""

from __future__ import annotations

import random
from datetime import datetime

from django.db.models import Min

from apps.studies.models import CheckItem, Experiment, Participation, Response
from apps.studies.scales import pairwise_labels

_rng = random.SystemRandom()  # positions a rater cannot predict


def _positions(rng: random.Random, candidates: list[int], n: int, taken: set[int]) -> list[int]:
    """``n`` positions from ``candidates``, preferring ones not ``taken``; fewer if too few."""
    free = [p for p in candidates if p not in taken]
    chosen = rng.sample(free, min(n, len(free)))
    if len(chosen) < n:
        rest = [p for p in candidates if p not in chosen]
        chosen += rng.sample(rest, min(n - len(chosen), len(rest)))
    return sorted(chosen)


def checks_plan(
    *, participation: Participation, experiment: Experiment, rng: random.Random | None = None
) -> list[CheckItem]:
    """Plan the participation's attention checks and probes; returns the items created.

    Attention checks come after 1..target-1 answers (never first, never after
    the last task), probes after 2..target-1 (there is an earlier answer to
    repeat that is not the one just given). Counts: ``attention_checks`` and
    ``probe_percent`` of the target, capped by the positions available.
    """
    rng = rng or _rng
    target = participation.target
    n_attention = experiment.attention_checks
    n_probes = round(experiment.probe_percent * target / 100)
    attention = _positions(rng, list(range(1, target)), n_attention, set())
    probes = _positions(rng, list(range(2, target)), n_probes, set(attention))
    items = [
        CheckItem(
            participation=participation,
            rater_id=participation.rater_id,
            kind=CheckItem.Kind.ATTENTION,
            due_after=p,
        )
        for p in attention
    ] + [
        CheckItem(
            participation=participation,
            rater_id=participation.rater_id,
            kind=CheckItem.Kind.PROBE,
            due_after=p,
        )
        for p in probes
    ]
    if not items:
        return []
    CheckItem.objects.bulk_create(items)
    participation.checks_planned = len(items)
    participation.next_check_after = min(item.due_after for item in items)
    Participation.objects.filter(pk=participation.pk).update(
        checks_planned=participation.checks_planned,
        next_check_after=participation.next_check_after,
    )
    return items


def _next_due(participation: Participation) -> int | None:
    return CheckItem.objects.filter(
        participation=participation, submitted_at__isnull=True
    ).aggregate(m=Min("due_after"))["m"]


def _answered_tasks(participation: Participation) -> list[tuple[int, bool | None]]:
    """(task id, its side) of the rater's answers to real tasks, oldest first."""
    return list(
        Response.objects.filter(
            rater_id=participation.rater_id,
            task__experiment_id=participation.experiment_id,
            task__is_catch=False,
        )
        .order_by("submitted_at", "pk")
        .values_list("task_id", "task__left_is_a")
    )


def _fill(item: CheckItem, participation: Participation, *, now: datetime) -> bool:
    """Choose what ``item`` shows; ``False`` when nothing suitable was answered yet."""
    answered = _answered_tasks(participation)
    experiment = participation.experiment
    if item.kind == CheckItem.Kind.PROBE:
        probed = set(
            CheckItem.objects.filter(
                participation=participation, kind=CheckItem.Kind.PROBE, task__isnull=False
            ).values_list("task_id", flat=True)
        )
        candidates = [(t, side) for t, side in answered[:-1] if t not in probed]
        if not candidates:
            return False
        task_id, side = _rng.choice(candidates)
        item.left_is_a = None if side is None else not side
    else:
        if not answered:
            return False
        task_id, side = _rng.choice(answered)
        item.left_is_a = None if side is None else _rng.random() < 0.5
        if experiment.is_pairwise:
            assert experiment.scale_points is not None
            item.instructed_choice = _rng.randrange(len(pairwise_labels(experiment.scale_points)))
        else:
            item.instructed_choice = _rng.randrange(len(experiment.study.family.class_names))
    item.task_id = task_id
    item.served_at = now
    item.save(update_fields=["task", "left_is_a", "instructed_choice", "served_at"])
    return True


def check_due(participation: Participation, *, now: datetime) -> CheckItem | None:
    """The check item the rater should answer now, if one is due.

    Lock precondition: the participation row is locked by the caller. Updates
    ``next_check_after`` and ``checks_planned`` in memory (the caller saves):
    an item that cannot be shown (nothing suitable answered) is dropped.
    """
    due = CheckItem.objects.filter(
        participation=participation,
        submitted_at__isnull=True,
        due_after__lte=participation.answered,
    ).order_by("due_after", "pk")
    for item in due:
        if item.task_id is not None or _fill(item, participation, now=now):
            return item
        item.delete()
        participation.checks_planned = max(participation.checks_planned - 1, 0)
    participation.next_check_after = _next_due(participation)
    return None


def check_for(*, participation: Participation, public_id: str) -> CheckItem | None:
    """One of the participation's served check items by its public id."""
    return CheckItem.objects.filter(
        participation=participation, public_id=public_id, task__isnull=False
    ).first()


def check_answer(
    item: CheckItem,
    participation: Participation,
    *,
    choice: int,
    answer: str,
    value: int | None,
    answer_raw: str,
    response_ms: int | None,
    now: datetime,
) -> bool:
    """Store the answer to a check item; ``False`` if it was answered already (the
    caller refuses a different choice first, as for tasks). Counts the answer on the participation and moves ``next_check_after``
    (in memory; the caller saves).
    """
    if item.submitted_at is not None:
        return False
    item.choice = choice
    item.answer = answer
    item.value = value
    item.answer_raw = answer_raw
    item.response_ms = response_ms
    item.submitted_at = now
    item.save(
        update_fields=["choice", "answer", "value", "answer_raw", "response_ms", "submitted_at"]
    )
    participation.checks_answered += 1
    participation.next_check_after = _next_due(participation)
    return True
