from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client

from apps.studies.exports import RESPONSE_COLUMNS
from apps.studies.models import Task
from tests.studies.helpers import answer as submit
from tests.studies.helpers import join, launched_study, next_task

pytestmark = pytest.mark.django_db


def _answer(participation, choice, *, left_is_a=None):
    assignment = next_task(participation)
    if left_is_a is not None:
        Task.objects.filter(pk=assignment.task_id).update(left_is_a=left_is_a)
    return submit(participation, assignment, choice, response_ms=900).response


def test_export_has_one_correct_row_per_answer(tmp_path):
    study = launched_study()
    pw = join(study.experiments.get(slug="pw"))
    fc = join(study.experiments.get(slug="fc"))
    r1 = _answer(pw, 1, left_is_a=False)  # "Left slightly more", B on the left -> -1 for A
    r2 = _answer(fc, 10)  # I don't know
    out = tmp_path / "responses.csv"
    call_command("export_responses", study.slug, "--out", str(out))
    with out.open() as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = [dict(zip(header, row, strict=True)) for row in reader]
    assert tuple(header) == RESPONSE_COLUMNS
    assert len(rows) == 2
    pairwise, forced = rows
    task = r1.task
    assert pairwise == {
        "study": study.slug,
        "experiment": "pw",
        "experiment_kind": "pairwise",
        "scale_points": "5",
        "task_id": str(task.pk),
        "image_id": str(task.image_id),
        "image_class": task.image.class_name,
        "rater_id": str(pw.rater.public_id),
        "rater_source": "link",
        "condition_a": task.stimulus_a.variant.label,
        "condition_b": task.stimulus_b.variant.label,
        "shown_left": "b",
        "answer": "-1",
        "answer_raw": "Left slightly more reasonable",
        "response_ms": "900",
        "submitted_at": pairwise["submitted_at"],
        "late": "false",
        "over_quota": "false",
        "check_kind": "",
        "probe_of": "",
        "expected": "",
        "reopened": "false",
    }
    assert pairwise["condition_a"] in ("cpr1", "cpr2") and pairwise["submitted_at"].endswith("Z")
    assert forced["experiment_kind"] == "forced_choice" and forced["scale_points"] == ""
    assert forced["condition_b"] == "" and forced["shown_left"] == ""
    assert forced["answer"] == "idk" and forced["condition_a"] == r2.task.stimulus_a.variant.label


def test_export_unknown_study_names_known_ones():
    launched_study(slug="known")
    with pytest.raises(CommandError, match="known: known"):
        call_command("export_responses", "nope", "--out", "-")


def test_admin_download_streams_the_same_csv():
    study = launched_study()
    _answer(join(study.experiments.get(slug="pw")), 2)
    user = get_user_model().objects.create_superuser("r", "r@example.invalid", "pw-123456")
    client = Client()
    client.force_login(user)
    response = client.get(f"/admin/studies/study/{study.pk}/responses.csv")
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert tuple(rows[0]) == RESPONSE_COLUMNS and len(rows) == 2 and rows[1][12] == "0"
