"""The database forms: `analyze --study` and the researcher results page."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client

from tests.studies.helpers import answer, join, launched_study, next_task

pytestmark = pytest.mark.django_db


def _answered_study(n_raters: int = 3):
    study = launched_study(images_per_class=1, tasks_per_rater=6)
    for experiment in study.experiments.all():
        for r in range(n_raters):
            participation = join(experiment)
            for i in range(6):
                assignment = next_task(participation)
                answer(participation, assignment, (r + i) % 5, response_ms=1500 + 10 * i)
    return study


def _staff_client() -> Client:
    user = get_user_model().objects.create_superuser("res", "res@example.invalid", "pw-123456")
    client = Client()
    client.force_login(user)
    return client


def test_analyze_study_writes_the_tables_from_the_database(tmp_path):
    study = _answered_study()
    call_command(
        "analyze",
        "--study",
        study.slug,
        "--out",
        str(tmp_path),
        "--bootstrap",
        "50",
        "--no-figures",
    )
    with (tmp_path / "forced_choice_summary.csv").open() as fh:
        summary = list(csv.DictReader(fh))
    # 3 raters x 6 answers in the forced-choice experiment, split over its 2 conditions
    assert sum(int(row["n_answers"]) for row in summary) == 18
    assert {row["condition"] for row in summary} <= {"cpr1", "cpr8"}
    with (tmp_path / "pairwise_means.csv").open() as fh:
        means = list(csv.DictReader(fh))
    assert sum(int(row["n_answers"]) for row in means) == 18


def test_analyze_unknown_study_names_the_known_ones(tmp_path):
    launched_study(slug="there")
    with pytest.raises(CommandError, match="known: there"):
        call_command("analyze", "--study", "nope", "--out", str(tmp_path))


def test_results_page_shows_tables_figures_and_downloads(
    analysis_inline, django_capture_on_commit_callbacks
):
    study = _answered_study()
    client = _staff_client()
    with django_capture_on_commit_callbacks(execute=True):
        first = client.get(f"/studies/{study.slug}/results/")
    assert "Computing" in first.content.decode()  # the run started after the response was built
    page = client.get(f"/studies/{study.slug}/results/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "pairwise_means.csv" in html and "forced_choice_summary.csv" in html
    assert "Analysis of 36 answers" in html
    assert ".png" in html
    table = client.get(f"/studies/{study.slug}/results/pairwise_means.csv?download=1")
    assert table.status_code == 200 and b"condition_a" in b"".join(table.streaming_content)
    zipped = client.get(f"/studies/{study.slug}/results.zip")
    body = b"".join(zipped.streaming_content)  # streamed from the stored archive
    assert int(zipped["Content-Length"]) == len(body)
    archive = zipfile.ZipFile(io.BytesIO(body))
    assert "explainability_index.csv" in {name.rsplit("/", 1)[-1] for name in archive.namelist()}
    assert client.get(f"/studies/{study.slug}/results/..%2Fsecret").status_code == 404


def test_results_page_follows_new_answers_and_is_staff_only():
    study = launched_study()
    client = _staff_client()
    assert "No answers yet" in client.get(f"/studies/{study.slug}/results/").content.decode()
    assert Client().get(f"/studies/{study.slug}/results/").status_code == 302
