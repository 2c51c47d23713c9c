"""Jobs whose worker was lost (SIGKILL, host gone) never stay "running": the
heartbeat keeps a live job's ``updated_at`` fresh, and the reaper re-queues a
silent one (it resumes from its markers), fails it after ``PIPELINE_MAX_ATTEMPTS``,
and finishes a cancelled job whose worker died before it stopped."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.pipeline.models import PipelineJob
from apps.pipeline.services import family_create, job_heartbeat, jobs_reap_stale

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.PIPELINE_STALE_SECONDS = 600
    settings.PIPELINE_MAX_ATTEMPTS = 3


@pytest.fixture
def dispatched(monkeypatch) -> list[tuple[int, int]]:
    """Record re-queues instead of running them."""
    from apps.pipeline.services import jobs

    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(
        jobs, "job_dispatch", lambda *, job_id, attempt: calls.append((job_id, attempt))
    )
    return calls


def _job(slug: str, *, status=PipelineJob.Status.RUNNING, silent_s: float, attempts: int = 1,
         finished: bool = False) -> PipelineJob:  # fmt: skip
    family = family_create(name=slug, slug=slug)
    now = timezone.now()
    job = PipelineJob.objects.create(family=family, attempts=attempts)
    PipelineJob.objects.filter(pk=job.pk).update(
        status=status,
        started_at=now - timedelta(hours=1),
        finished_at=now if finished else None,
        updated_at=now - timedelta(seconds=silent_s),
    )
    job.refresh_from_db()
    return job


def test_a_silent_running_job_is_requeued_and_resumes_to_success(stub_pipeline):
    # given a job whose worker died after two steps (markers left), silent for 11 minutes,
    # and a live job of another family that beat a minute ago
    lost = _job("lost", silent_s=660)
    live = _job("live", silent_s=60)
    from apps.pipeline.services import family_workdir

    workdir = family_workdir(lost.family)
    for step in ("data", "train"):
        stub_pipeline.run_step(None, workdir, step)
    stub_pipeline.computed.clear()
    # when the reaper runs (eager Celery: the re-queued job runs inline)
    assert jobs_reap_stale() == [lost.pk]
    # then the lost job ran again as attempt 2, resumed after its finished steps, and succeeded
    lost.refresh_from_db()
    assert lost.status == PipelineJob.Status.SUCCEEDED, lost.error
    assert lost.attempts == 2
    assert stub_pipeline.computed == ["select", "metrics", "manifest"]
    # and the live job was left alone
    before = live.updated_at
    live.refresh_from_db()
    assert (live.status, live.attempts, live.updated_at) == (PipelineJob.Status.RUNNING, 1, before)


def test_a_job_lost_on_its_last_attempt_is_failed_with_the_reason(dispatched):
    # given a job on its third (last) attempt, silent for 11 minutes
    job = _job("lost", silent_s=660, attempts=3)
    # when the reaper runs
    now = timezone.now()
    assert jobs_reap_stale(now=now) == [job.pk]
    # then it is failed, not re-queued, and says why
    job.refresh_from_db()
    assert job.status == PipelineJob.Status.FAILED
    assert job.finished_at == now
    assert job.error == "worker lost (no heartbeat for 660 s, 3 attempts)"
    assert dispatched == []
    # and a second reaper finds nothing left to do
    assert jobs_reap_stale(now=now + timedelta(minutes=30)) == []


def test_requeues_count_up_to_the_limit(dispatched):
    job = _job("lost", silent_s=660)
    now = timezone.now()
    assert jobs_reap_stale(now=now) == [job.pk]  # attempt 2 queued
    assert jobs_reap_stale(now=now + timedelta(seconds=601)) == [job.pk]  # attempt 3
    assert dispatched == [(job.pk, 2), (job.pk, 3)]
    job.refresh_from_db()
    assert job.status == PipelineJob.Status.RUNNING and "attempt 3 of 3" in job.message
    assert jobs_reap_stale(now=now + timedelta(seconds=1202)) == [job.pk]
    job.refresh_from_db()
    assert job.status == PipelineJob.Status.FAILED and "3 attempts" in job.error
    assert len(dispatched) == 2


def test_a_cancelled_job_whose_worker_died_before_stopping_is_finished(dispatched):
    stale = _job("stale", status=PipelineJob.Status.CANCELLED, silent_s=700)
    fresh = _job("fresh", status=PipelineJob.Status.CANCELLED, silent_s=30)
    done = _job("done", status=PipelineJob.Status.CANCELLED, silent_s=9000, finished=True)
    assert jobs_reap_stale() == [stale.pk]
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert not stale.is_stopping and "worker was lost" in stale.message
    assert stale.status == PipelineJob.Status.CANCELLED
    assert fresh.is_stopping
    assert PipelineJob.objects.get(pk=done.pk).finished_at == done.finished_at
    assert dispatched == []


def test_two_reapers_at_once_requeue_a_job_once(dispatched, monkeypatch):
    from apps.pipeline.services import reaper

    # given two reapers that both read the stale job before either wrote
    job = _job("lost", silent_s=660)
    now = timezone.now()
    seen_by_second = reaper._stale_running(now - timedelta(seconds=600))
    assert [j.pk for j in seen_by_second] == [job.pk]
    # when the first acts, then the second (with its stale read) does nothing
    assert jobs_reap_stale(now=now) == [job.pk]
    monkeypatch.setattr(reaper, "_stale_running", lambda cutoff: seen_by_second)
    assert jobs_reap_stale(now=now) == []
    assert dispatched == [(job.pk, 2)]
    assert PipelineJob.objects.get(pk=job.pk).attempts == 2


def test_a_delivery_of_a_superseded_attempt_does_nothing(stub_pipeline):
    from apps.pipeline.tasks import run_job

    # given a job the reaper re-queued as attempt 2
    job = _job("lost", silent_s=0, attempts=2)
    # when the first attempt's task is delivered late (e.g. broker redelivery)
    assert run_job.delay(job.pk, 1).get() == PipelineJob.Status.RUNNING
    # then nothing ran
    assert stub_pipeline.computed == []
    assert PipelineJob.objects.get(pk=job.pk).updated_at == job.updated_at


def test_the_heartbeat_refreshes_a_running_job_only():
    running = _job("beating", silent_s=660)
    failed = _job("failed", status=PipelineJob.Status.FAILED, silent_s=660, finished=True)
    with job_heartbeat(running.pk, seconds=0.01) as beat:
        deadline = time.monotonic() + 30  # a bound, not a timing claim: beats are 10 ms apart
        while beat.beats < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    with job_heartbeat(failed.pk, seconds=0.01) as beat_failed:
        deadline = time.monotonic() + 30
        while beat_failed.beats < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert beat.beats >= 2
    assert PipelineJob.objects.get(pk=running.pk).updated_at > running.updated_at
    assert PipelineJob.objects.get(pk=failed.pk).updated_at == failed.updated_at
