"""Quality in the loop: per-rater figures while the study runs, exclusion, reopened slots.

:func:`study_quality_pass` runs the analysis' own quality code
(``apps.analysis.services.study_rater_quality``, the same rules as the
final tables) over the answers stored so far, writes each participation's
figures (``Participation.quality``) and marks the raters a rule excludes
(``excluded_at``, ``exclusion_reasons``). An excluded rater gets no further
task (the rater loop ends their session at the next request). When the
experiment says so (``reopen_excluded``, on by default) the slots their
answers filled are freed for other raters: the answers stay stored, flagged
``reopened`` (kept, not counted, like over-quota answers). A reopened slot
takes a new rank after every other, so the allocation's rank floor (the
lowest unanswered rank never goes down) stays valid.

A rater is judged once they gave ``QUALITY_MIN_ANSWERS`` answers or finished:
a rule about a median or a share says little about two answers. Celery beat
runs the pass every few minutes for live studies (``apps.studies.tasks``); the
``quality_pass`` command runs it by hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import Max

from apps.core import clock
from apps.studies import allocation
from apps.studies.lock_objects import participation_for_update
from apps.studies.models import Participation, Response, Slot, Study

FIGURES = (
    "n_answers",
    "median_ms",
    "share_left_more",
    "n_attention",
    "attention_failed",
    "attention_accuracy",
    "n_catch",
    "catch_accuracy",
    "n_probes",
    "consistency",
)


@dataclass
class QualityPass:
    raters: int = 0
    excluded: list[str] = field(default_factory=list)  # rater public ids newly excluded
    reopened: int = 0  # slots given back to the pool


def _clean(value):
    """A JSON-safe figure: numpy scalars to Python, NaN to None."""
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def participation_reopen_slots(*, participation_id: int) -> int:
    """Free the slots an excluded rater's answers filled, and the one they hold; returns
    how many answered slots were freed.

    One transaction with the participation locked (no answer of theirs can
    land meanwhile); the answers stay, flagged ``reopened``.
    """
    with transaction.atomic():
        participation = participation_for_update(participation_id=participation_id)
        if participation.current_assignment_id is not None:  # the task on their screen too
            allocation.lease_release(
                assignment_id=participation.current_assignment_id,
                participation_id=participation.pk,
            )
            Participation.objects.filter(pk=participation.pk).update(current_assignment=None)
        filled = list(
            Response.objects.select_for_update()
            .filter(
                rater_id=participation.rater_id,
                task__experiment_id=participation.experiment_id,
                slot__isnull=False,
            )
            .order_by("submitted_at", "pk")
            .values_list("pk", "slot_id")
        )
        if not filled:
            return 0
        top = Slot.objects.filter(experiment_id=participation.experiment_id).aggregate(
            m=Max("rank")
        )["m"]
        Response.objects.filter(pk__in=[pk for pk, _ in filled]).update(slot=None, reopened=True)
        for offset, (_, slot_id) in enumerate(filled, start=1):
            Slot.objects.filter(pk=slot_id).update(
                is_answered=False, holder=None, lease_expires_at=None, rank=top + offset
            )
        return len(filled)


def _judged(participation: Participation, n_answers: int) -> bool:
    finished = participation.status != Participation.Status.ACTIVE
    return finished or n_answers >= settings.QUALITY_MIN_ANSWERS


def study_quality_pass(*, study: Study, rules=None) -> QualityPass:
    """Update every participation's quality figures; exclude and reopen per the rules."""
    from apps.analysis.services import study_rater_quality  # analysis reads studies, not back

    table = study_rater_quality(study=study, rules=rules)
    outcome = QualityPass()
    if table is None or len(table) == 0:
        return outcome
    rows = {str(row["rater_id"]): row for row in table.to_dict("records")}
    participations = Participation.objects.filter(experiment__study=study).select_related(
        "rater", "experiment"
    )
    now = clock.now()
    for participation in participations:
        row = rows.get(str(participation.rater.public_id))
        if row is None:
            continue
        outcome.raters += 1
        figures = {name: _clean(row.get(name)) for name in FIGURES if name in row}
        figures["reasons"] = str(row.get("reasons") or "")
        figures["updated_at"] = now.isoformat()
        update = {"quality": figures}
        n_answers = int(row.get("n_answers") or 0)
        newly = (
            bool(row.get("excluded"))
            and participation.excluded_at is None
            and _judged(participation, n_answers)
        )
        if newly:
            update.update(excluded_at=now, exclusion_reasons=figures["reasons"][:200])
        Participation.objects.filter(pk=participation.pk).update(**update)
        if newly:
            outcome.excluded.append(str(participation.rater.public_id))
            if participation.experiment.reopen_excluded:
                outcome.reopened += participation_reopen_slots(participation_id=participation.pk)
    return outcome


def live_studies_quality_pass(rules=None) -> dict[str, QualityPass]:
    """The pass over every live or paused study (what Celery beat runs)."""
    studies = Study.objects.filter(status__in=[Study.Status.LIVE, Study.Status.PAUSED])
    return {study.slug: study_quality_pass(study=study, rules=rules) for study in studies}
