"""The results page never analyses in the request: one background run per state of the answers."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from apps.analysis.models import AnalysisRun
from tests.studies.helpers import answer, answer_one, join, launched_study, next_task

pytestmark = pytest.mark.django_db


def _study(*, fast_rater: bool = False):
    """Three raters x 4 answers per experiment; with ``fast_rater`` one answers in 300 ms."""
    study = launched_study(images_per_class=1, tasks_per_rater=4)
    for experiment in study.experiments.all():
        for r in range(3):
            participation = join(experiment)
            for i in range(4):
                ms = 300 if fast_rater and r == 0 else 1500 + 10 * i
                answer(participation, next_task(participation), (r + i) % 5, response_ms=ms)
    return study


def _client(*, superuser: bool = True, name: str = "res") -> Client:
    User = get_user_model()
    user = User.objects.create_user(
        name, f"{name}@example.invalid", "pw-123456", is_staff=True, is_superuser=superuser
    )
    client = Client()
    client.force_login(user)
    return client


def _url(study, extra: str = "") -> str:
    return f"/studies/{study.slug}/results/{extra}"


def test_the_request_returns_without_running_the_analysis(
    analysis_dispatches, django_capture_on_commit_callbacks, monkeypatch, settings
):
    def never(**kwargs):
        raise AssertionError("the analysis ran in the request")

    monkeypatch.setattr("apps.analysis.services.study_analyze", never)
    study = _study()
    with django_capture_on_commit_callbacks(execute=True):
        page = _client().get(_url(study))
    assert page.status_code == 200
    html = page.content.decode()
    run = AnalysisRun.objects.get(study=study)
    assert analysis_dispatches == [run.pk]
    assert (run.status, run.n_answers, run.key) == ("running", 24, f"24-{run.key.split('-')[1]}")
    assert "Computing… (started at" in html and 'http-equiv="refresh"' in html
    assert not any(Path(settings.RESULTS_ROOT).rglob("DONE"))


def test_the_task_runs_the_run_and_the_page_shows_it(
    analysis_inline, django_capture_on_commit_callbacks
):
    study = _study()
    client = _client()
    with django_capture_on_commit_callbacks(execute=True):
        client.get(_url(study))
    run = AnalysisRun.objects.get(study=study)
    assert (run.status, run.step, run.error) == ("done", "", "")
    html = client.get(_url(study)).content.decode()
    assert "Computing" not in html and 'http-equiv="refresh"' not in html
    assert "Analysis of 24 answers." in html and "pairwise_means.csv" in html


def test_results_are_cached_per_answer_count(analysis_inline, django_capture_on_commit_callbacks):
    study = _study()
    client = _client()
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            assert client.get(_url(study)).status_code == 200
    assert len(analysis_inline) == 1  # the same answers: analysed once
    answer_one(join(study.experiments.get(slug="pw")), response_ms=2000)
    with django_capture_on_commit_callbacks(execute=True):
        client.get(_url(study))
    assert len(analysis_inline) == 2
    runs = list(
        AnalysisRun.objects.filter(study=study).order_by("pk").values_list("n_answers", "status")
    )
    assert runs == [(24, "done"), (25, "done")]
    assert "Analysis of 25 answers." in client.get(_url(study)).content.decode()


def test_one_run_at_a_time_and_a_dead_run_restarts(
    analysis_dispatches, django_capture_on_commit_callbacks
):
    study = _study()
    client = _client()
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            assert "Computing…" in client.get(_url(study)).content.decode()
    assert len(analysis_dispatches) == 1 and AnalysisRun.objects.count() == 1
    # a run "running" for hours died with its worker: the next view starts it again, once
    AnalysisRun.objects.update(started_at=AnalysisRun.objects.get().started_at - timedelta(hours=3))
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            client.get(_url(study))
    assert len(analysis_dispatches) == 2 and AnalysisRun.objects.count() == 1


def test_excluded_raters_summary_and_the_include_flag(
    analysis_inline, django_capture_on_commit_callbacks
):
    study = _study(fast_rater=True)
    client = _client()
    with django_capture_on_commit_callbacks(execute=True):
        client.get(_url(study))
    html = client.get(_url(study)).content.decode()
    # the fast rater joined both experiments: one public id per experiment's browser
    assert "2 raters excluded</strong> by the quality rules:" in html
    assert "too_fast 2" in html
    assert 'href="?include_excluded=1"' in html

    with django_capture_on_commit_callbacks(execute=True):
        client.get(_url(study, "?include_excluded=1"))
    included = AnalysisRun.objects.get(study=study, include_excluded=True)
    assert included.key.endswith("-all") and included.status == "done"
    html = client.get(_url(study, "?include_excluded=1")).content.decode()
    assert "Excluded raters are included" in html
    zipped = client.get(f"/studies/{study.slug}/results.zip?include_excluded=1")
    assert zipped.status_code == 200 and "all-raters" in zipped["Content-Disposition"]
    # both analyses stay: the default one still shows its own answers
    assert "2 raters excluded" in client.get(_url(study)).content.decode()


def test_a_study_the_user_may_not_see_is_a_404(analysis_dispatches):
    study = _study()
    stranger = _client(superuser=False, name="stranger")
    for path in ("", "pairwise_means.csv"):
        assert stranger.get(_url(study, path)).status_code == 404
    assert stranger.get(f"/studies/{study.slug}/results.zip").status_code == 404
    assert stranger.get("/studies/nope/results/").status_code == 404
    assert analysis_dispatches == [] and not AnalysisRun.objects.exists()
    assert Client().get(_url(study)).status_code == 302


@pytest.mark.django_db(transaction=True)
def test_laptop_mode_runs_the_task_in_a_background_thread(settings):
    """Eager Celery (no broker): the request returns at once, a thread runs the task."""
    import threading
    import time

    settings.CELERY_TASK_ALWAYS_EAGER = True  # laptop mode, whatever the environment says
    study = _study()
    client = _client()
    assert "Computing…" in client.get(_url(study)).content.decode()
    deadline = time.monotonic() + 120
    while AnalysisRun.objects.get(study=study).status == "running":
        assert time.monotonic() < deadline, "the background analysis did not finish"
        time.sleep(0.5)
    for thread in threading.enumerate():
        if thread.name.startswith("analysis-"):
            thread.join(timeout=30)
    assert AnalysisRun.objects.get(study=study).status == "done"
    assert "Analysis of 24 answers." in client.get(_url(study)).content.decode()
