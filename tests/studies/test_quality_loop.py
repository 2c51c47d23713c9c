"""Quality in the loop: figures per participation, exclusion, reopened slots."""

from __future__ import annotations

import csv
import io

import pandas as pd
import pytest
from django.core.management import call_command

from apps.studies.exports import response_csv_lines
from apps.studies.models import Participation, Response, Slot
from apps.studies.services import assignment_next
from apps.studies.services import quality as quality_service
from tests.studies.helpers import answer_all, answer_one, join, launched_study, next_task

pytestmark = pytest.mark.django_db


def _table(rows):
    return pd.DataFrame(
        [
            {
                "rater_id": str(p.rater.public_id),
                "n_answers": n,
                "median_ms": 1500.0,
                "share_left_more": float("nan"),
                "attention_failed": failed,
                "excluded": bool(reasons),
                "reasons": reasons,
            }
            for p, n, failed, reasons in rows
        ]
    )


def _fake_quality(monkeypatch, rows):
    import apps.analysis.services as analysis_services

    monkeypatch.setattr(
        analysis_services, "study_rater_quality", lambda *, study, rules=None: _table(rows)
    )


def test_reopened_slots_go_to_other_raters_and_the_answers_stay():
    study = launched_study(answers_per_task=1, tasks_per_rater=4)
    experiment = study.experiments.get(slug="pw")
    bad = join(experiment)
    for _ in range(3):
        answer_one(bad, 0)
    filled = list(Response.objects.filter(rater=bad.rater).values_list("slot_id", flat=True))
    top = max(Slot.objects.filter(experiment=experiment).values_list("rank", flat=True))
    assert quality_service.participation_reopen_slots(participation_id=bad.pk) == 3
    slots = Slot.objects.filter(pk__in=filled)
    assert all(not s.is_answered and s.holder_id is None for s in slots)
    assert sorted(s.rank for s in slots) == [top + 1, top + 2, top + 3]  # behind every other
    assert Response.objects.filter(rater=bad.rater, reopened=True, slot=None).count() == 3
    # Every task can be answered again by someone else: the quota is whole again.
    n_slots = Slot.objects.filter(experiment=experiment).count()
    answered = 0
    for _ in range(n_slots):  # bounded: a rater answers at least one task or none is left
        if not Slot.objects.filter(experiment=experiment, is_answered=False).exists():
            break
        answered += answer_all(join(experiment))
    assert answered == n_slots  # the 3 reopened included
    rows = list(csv.DictReader(io.StringIO("".join(response_csv_lines(study=study)))))
    assert sum(r["reopened"] == "true" for r in rows) == 3


def test_the_pass_excludes_per_the_rules_and_ends_the_session(monkeypatch, settings):
    settings.QUALITY_MIN_ANSWERS = 3
    study = launched_study(answers_per_task=2, tasks_per_rater=6)
    experiment = study.experiments.get(slug="fc")
    bad, early, good = join(experiment), join(experiment), join(experiment)
    for _ in range(3):
        answer_one(bad, 0)
        answer_one(good, 1)
    answer_one(early, 0)
    _fake_quality(
        monkeypatch,
        [(bad, 3, 2, "attention"), (early, 1, 1, "attention"), (good, 3, 0, "")],
    )
    outcome = quality_service.study_quality_pass(study=study)
    assert outcome.raters == 3 and outcome.excluded == [str(bad.rater.public_id)]
    assert outcome.reopened == 3
    bad.refresh_from_db()
    early.refresh_from_db()
    good.refresh_from_db()
    assert bad.excluded_at is not None and bad.exclusion_reasons == "attention"
    assert bad.quality["attention_failed"] == 2 and bad.quality["reasons"] == "attention"
    assert early.excluded_at is None  # one answer: not judged yet
    assert good.excluded_at is None and good.quality["median_ms"] == 1500.0
    assert good.quality["share_left_more"] is None  # NaN is stored as null
    # The excluded rater's session ends at the next request; the others go on.
    step = assignment_next(participation_id=bad.pk)
    bad.refresh_from_db()
    assert step.state == "done" and bad.status == Participation.Status.COMPLETED
    assert next_task(good) is not None
    # A second pass changes nothing for the rater already excluded.
    again = quality_service.study_quality_pass(study=study)
    assert again.excluded == [] and again.reopened == 0


def test_reopening_is_configurable(monkeypatch, settings):
    settings.QUALITY_MIN_ANSWERS = 1
    study = launched_study(answers_per_task=2, tasks_per_rater=3, reopen_excluded=False)
    experiment = study.experiments.get(slug="pw")
    bad = join(experiment)
    answer_one(bad, 0)
    _fake_quality(monkeypatch, [(bad, 1, 0, "too_fast")])
    out = io.StringIO()
    call_command("quality_pass", study.slug, stdout=out)
    assert "1 newly excluded, 0 slot(s) reopened" in out.getvalue()
    assert Response.objects.filter(rater=bad.rater, reopened=False).exclude(slot=None).count() == 1
