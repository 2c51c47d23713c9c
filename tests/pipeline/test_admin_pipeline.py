"""The pipeline in the admin: a run that never blocks the request, live progress
JSON, cancel and retry, the stimulus grid (blinded and unblinded), formatted
numbers, and staff-only endpoints."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import OperationalError
from django.test import Client
from django.utils import timezone

from apps.pipeline.models import ModelFamily, PipelineJob, Stimulus
from apps.pipeline.services import family_create
from tests.factories import family_with_stimuli
from tests.pipeline.test_jobs import TINY
from tests.workers.conftest import write_colour_tree

pytestmark = pytest.mark.django_db(transaction=True)

FAMILIES = "/admin/pipeline/modelfamily/"
JOBS = "/admin/pipeline/pipelinejob/"


def _wait_for(job_id: int, statuses: set[str], timeout: float = 60) -> PipelineJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            job = PipelineJob.objects.get(pk=job_id)
        except OperationalError:  # shared-cache SQLite: the job's thread is writing
            time.sleep(0.05)
            continue
        if job.status in statuses and not job.is_stopping:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job.status} after {timeout} s")


def _run_action(client: Client, family: ModelFamily):
    return client.post(FAMILIES, {"action": "run_pipeline", "_selected_action": [family.pk]})


@pytest.fixture
def in_thread(settings):
    settings.PIPELINE_RUN_IN_THREAD = True
    settings.CELERY_TASK_ALWAYS_EAGER = True  # laptop mode, even where CI sets a broker


def test_the_run_action_returns_at_once_and_the_job_runs_in_the_background(
    admin_client_, stub_pipeline, in_thread
):
    # given a pipeline whose steps wait for the test
    family = family_create(name="Stubbed", slug="stubbed")
    stub_pipeline.gate.clear()
    # when the researcher runs it from the family list
    response = _run_action(admin_client_, family)
    # then the request came back while the job has not finished, on the job's live page
    job = PipelineJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"{JOBS}{job.pk}/change/"
    assert job.status in ("queued", "running")
    assert stub_pipeline.entered.wait(10)
    # and the job finishes in the background once its steps may go on
    stub_pipeline.gate.set()
    job = _wait_for(job.pk, {"succeeded", "failed"})
    assert job.status == "succeeded", job.error
    assert family.variants.count() == 2 and Stimulus.objects.filter(catch="").exists()


def test_a_real_tiny_run_from_the_admin_finishes_in_the_background(
    admin_client_, tmp_path, in_thread
):
    root = tmp_path / "tree"
    write_colour_tree(root, per_split={"train": 24, "val": 6, "test": 6})
    family = family_create(name="tiny", slug="tiny", dataset="folder", data_root=str(root),
                           cprs=[2], config=TINY)  # fmt: skip
    started = time.monotonic()
    response = _run_action(admin_client_, family)
    assert response.status_code == 302
    assert time.monotonic() - started < 5  # the request did not train a model
    job = _wait_for(PipelineJob.objects.get().pk, {"succeeded", "failed"}, timeout=600)
    assert job.status == "succeeded", job.error
    assert {"data", "train", "prune:2", "select", "metrics", "manifest"} <= set(job.timings)


def test_progress_json_is_formatted_and_staff_only(admin_client_, client):
    family = family_create(name="F", slug="f")
    now = timezone.now()
    job = PipelineJob.objects.create(
        family=family, status="running", progress=0.42351, step="train", message="epoch 3",
        timings={"data": 1.234, "train": 12.345}, started_at=now - timedelta(seconds=20),
    )  # fmt: skip
    data = admin_client_.get(f"{JOBS}{job.pk}/progress/").json()
    assert data["status"] == "running" and data["live"] and data["can_cancel"]
    assert not data["can_retry"]
    assert data["progress_display"] == "42.4%" and data["step"] == "train"
    assert [(t["step"], t["display"]) for t in data["timings"]] == [
        ("data", "1.2 s"), ("train", "12.3 s")
    ]  # fmt: skip
    assert data["total_display"] == "13.6 s"
    assert re.fullmatch(r"\d+\.\d s", data["elapsed_display"])
    # the family's endpoint gives its latest job
    assert admin_client_.get(f"{FAMILIES}{family.pk}/progress/").json()["id"] == job.pk
    # not for anonymous visitors, nor for users who are not staff
    for url in (f"{JOBS}{job.pk}/progress/", f"{FAMILIES}{family.pk}/progress/",
                f"{FAMILIES}{family.pk}/stimuli/"):  # fmt: skip
        assert client.get(url).status_code == 302  # to the admin login
    user = get_user_model().objects.create_user("rater", password="pw-123456")
    client.force_login(user)
    assert client.get(f"{JOBS}{job.pk}/progress/").status_code == 302
    assert client.post(f"{JOBS}{job.pk}/cancel/").status_code == 302
    assert PipelineJob.objects.get(pk=job.pk).status == "running"
    # and staff without the pipeline permissions get a 403
    user.is_staff = True
    user.save()
    assert client.get(f"{JOBS}{job.pk}/progress/").status_code == 403
    assert client.post(f"{JOBS}{job.pk}/cancel/").status_code == 403


def test_cancel_stops_a_running_job_between_steps_and_retry_resumes_it(
    admin_client_, stub_pipeline, in_thread
):
    family = family_create(name="Stubbed", slug="stubbed")
    stub_pipeline.gate.clear()
    _run_action(admin_client_, family)
    job = PipelineJob.objects.get()
    assert stub_pipeline.entered.wait(10)  # the "data" step is running
    # when the researcher cancels it
    response = admin_client_.post(f"{JOBS}{job.pk}/cancel/", {"next": f"{JOBS}{job.pk}/change/"})
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == "cancelled" and job.is_stopping
    assert admin_client_.get(f"{JOBS}{job.pk}/progress/").json()["stopping"]
    # a retry waits until the running step has ended
    response = admin_client_.post(f"{JOBS}{job.pk}/retry/", follow=True)
    assert "still finishing its current step" in response.content.decode()
    # then the current step finishes and the job stops before the next one
    stub_pipeline.gate.set()
    job = _wait_for(job.pk, {"cancelled"})
    assert job.finished_at is not None and job.message == "cancelled before step train"
    assert stub_pipeline.computed == ["data"]
    # when it is retried, a new job resumes after the finished step
    response = admin_client_.post(f"{JOBS}{job.pk}/retry/")
    new = PipelineJob.objects.exclude(pk=job.pk).get()
    assert response["Location"] == f"{JOBS}{new.pk}/change/"
    new = _wait_for(new.pk, {"succeeded", "failed"})
    assert new.status == "succeeded", new.error
    assert stub_pipeline.computed == ["data", "train", "select", "metrics", "manifest"]
    # and a finished job can be neither cancelled nor retried
    response = admin_client_.post(f"{JOBS}{new.pk}/cancel/", follow=True)
    assert "only a queued or running job can be cancelled" in response.content.decode()
    response = admin_client_.post(f"{JOBS}{new.pk}/retry/", follow=True)
    assert "only a failed or cancelled job can be retried" in response.content.decode()


def test_a_queued_job_is_cancelled_at_once_and_a_failed_one_can_be_retried(
    admin_client_, stub_pipeline
):
    family = family_create(name="F", slug="f")
    queued = PipelineJob.objects.create(family=family)
    admin_client_.post(f"{JOBS}{queued.pk}/cancel/")
    queued.refresh_from_db()
    assert queued.status == "cancelled" and queued.finished_at is not None
    # the runner never resurrects it
    from apps.pipeline.services import job_run_model_steps

    assert job_run_model_steps(job_id=queued.pk).status == "cancelled"
    assert stub_pipeline.computed == []
    PipelineJob.objects.filter(pk=queued.pk).update(status="failed", error="boom")
    admin_client_.post(f"{JOBS}{queued.pk}/retry/")  # inline here (no thread)
    assert PipelineJob.objects.latest("created_at").status == "succeeded"


@pytest.fixture
def stimuli_family():
    return family_with_stimuli(slug="grid", images_per_class=1, cprs=[1, 2, 4],
                               class_names=["circle", "square", "triangle"])  # fmt: skip


def _img_srcs(html: str) -> list[str]:
    start = html.index('<table class="xai-grid')
    table = html[start : html.index("</table>", start)]
    return re.findall(r'class="xai-map" src="([^"]+)"', table)


def test_the_unblinded_grid_has_columns_by_cpr_with_labels(admin_client_, stimuli_family):
    html = admin_client_.get(
        f"{FAMILIES}{stimuli_family.pk}/stimuli/?kind=heat&method=gradcam&view=unblinded"
    ).content.decode()
    labels = re.findall(r'class="xai-col" data-label="([^"]+)"', html)
    assert labels == ["cpr1", "cpr2", "cpr4"]
    assert "CPR 2.00 · acc 94.0%" in html
    real = Stimulus.objects.filter(variant__family=stimuli_family, kind="heat", catch="")
    srcs = _img_srcs(html)
    assert len(srcs) == 3 * 3 and {s.rsplit("/", 1)[1] for s in srcs} == {
        f.rsplit("/", 1)[1] for f in real.values_list("file", flat=True)
    }
    # each row in CPR order
    first = real.filter(image__class_name="circle").order_by("variant__cpr_target")
    assert [s.rsplit("/", 1)[1] for s in srcs[:3]] == [
        f.rsplit("/", 1)[1] for f in first.values_list("file", flat=True)
    ]
    # the catch toggle adds the catch rows (heat: rot180), labelled
    html = admin_client_.get(
        f"{FAMILIES}{stimuli_family.pk}/stimuli/?kind=heat&view=unblinded&catch=1"
    ).content.decode()
    assert len(_img_srcs(html)) == 3 * 3 * 2 and html.count("catch: rot180") == 3


def test_the_blinded_grid_shuffles_and_hides_labels(admin_client_, stimuli_family):
    url = f"{FAMILIES}{stimuli_family.pk}/stimuli/?kind=occlusion&method=gradcam&view=blinded"
    html = admin_client_.get(url + "&seed=7").content.decode()
    start = html.index('<table class="xai-grid')
    table = html[start : html.index("</table>", start)]
    assert "cpr" not in table.lower() and "CPR" not in table and "catch" not in table
    assert "circle" not in table
    srcs = _img_srcs(html)
    real = Stimulus.objects.filter(variant__family=stimuli_family, kind="occlusion", catch="")
    by_cpr = [
        s.file.rsplit("/", 1)[1] for s in real.order_by("image__class_index", "variant__cpr_target")
    ]
    names = [s.rsplit("/", 1)[1] for s in srcs]
    assert sorted(names) == sorted(by_cpr)  # the same maps, real ones only
    orders = {
        html_seed: [s.rsplit("/", 1)[1] for s in _img_srcs(admin_client_.get(
            f"{url}&seed={html_seed}").content.decode())]
        for html_seed in range(1, 8)
    }  # fmt: skip
    assert any(order != by_cpr for order in orders.values())  # not in CPR order
    assert admin_client_.get(url + "&seed=7").content.decode().count("xai-map") == len(srcs)
    # catch stimuli only with the toggle (occlusion: rot180 and light)
    html = admin_client_.get(url + "&catch=1").content.decode()
    assert len(_img_srcs(html)) == 3 * 3 * 3


def test_a_stimulus_page_shows_its_image_and_numbers_are_formatted(admin_client_, stimuli_family):
    stimulus = Stimulus.objects.filter(catch="").first()
    html = admin_client_.get(f"/admin/pipeline/stimulus/{stimulus.pk}/change/").content.decode()
    assert f'src="/media/{stimulus.file}"' in html
    assert f'src="/media/{stimulus.image.file}"' in html
    # variants: accuracy as a percentage with one decimal, CPR with two decimals
    html = admin_client_.get("/admin/pipeline/modelvariant/").content.decode()
    assert "95.0%" in html and "93.0%" in html and "4.00" in html and "75.0%" in html
    html = admin_client_.get(f"{FAMILIES}{stimuli_family.pk}/change/").content.decode()
    assert "94.0%" in html and "2.00" in html and "Stimulus grid" in html
    assert "xai-job" in html and "admin_xai/job_progress.js" in html
    # jobs: progress as a percentage, timings in seconds with one decimal
    now = timezone.now()
    job = PipelineJob.objects.create(
        family=stimuli_family, status="succeeded", progress=1.0, step="done",
        timings={"data": 1.25, "train": 61.04}, started_at=now - timedelta(seconds=75.3),
        finished_at=now,
    )  # fmt: skip
    html = admin_client_.get(JOBS).content.decode()
    assert "100.0%" in html and "75.3 s" in html
    html = admin_client_.get(f"{JOBS}{job.pk}/change/").content.decode()
    assert "data 1.2 s, train 61.0 s" in html and 'class="xai-job"' in html
    html = admin_client_.get(FAMILIES).content.decode()
    assert "Succeeded 100.0% done" in html
    for url in ("/admin/pipeline/stimulus/", "/admin/pipeline/sourceimage/"):
        assert admin_client_.get(url).status_code == 200
