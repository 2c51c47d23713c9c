"""Pipeline jobs: queue, dispatch, cancel, retry, and the two halves a worker runs.

A job is handed to a worker ``attempts`` times: once when queued, once more
each time the stale-job reaper (:mod:`apps.pipeline.services.reaper`) finds
its worker lost. The task carries the attempt it belongs to; a delivery of an
older attempt (superseded by a re-queue) does nothing, so two workers never
run the same job.
"""

from __future__ import annotations

import logging
import traceback

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.core.exceptions import ConflictError
from apps.pipeline.models import ModelFamily, PipelineJob
from apps.pipeline.services.imports import pipeline_import_manifest
from apps.pipeline.services.steps import JobCancelled, job_run_steps, job_update
from apps.pipeline.services.workspace import family_workdir

logger = logging.getLogger(__name__)


def job_runs_in_thread() -> bool:
    """Whether a launched job runs in a background thread of this process.

    ``PIPELINE_RUN_IN_THREAD`` (default: on exactly when Celery is eager, i.e.
    no broker): an eager task would otherwise run inside the admin request and
    block it for the whole job. Tests that want the old synchronous eager run
    set it to ``False``.
    """
    return bool(getattr(settings, "PIPELINE_RUN_IN_THREAD", settings.CELERY_TASK_ALWAYS_EAGER))


def job_dispatch(*, job_id: int, attempt: int, in_thread: bool | None = None) -> None:
    """Hand attempt ``attempt`` of the job to a worker (call after commit).

    With a broker: the ``pipeline.run_job`` task on the gpu queue. Without one
    (eager Celery): a daemon thread of this process when ``in_thread`` (default
    :func:`job_runs_in_thread`), else inline.
    """
    if in_thread is None:
        in_thread = job_runs_in_thread()
    if in_thread and settings.CELERY_TASK_ALWAYS_EAGER:
        from apps.pipeline.runner import job_start_thread

        job_start_thread(job_id=job_id, attempt=attempt)
        return
    from apps.pipeline.tasks import run_job

    result = run_job.delay(job_id, attempt)
    PipelineJob.objects.filter(pk=job_id).update(celery_task_id=result.id or "")


def job_create(*, family: ModelFamily, in_thread: bool | None = None) -> PipelineJob:
    """Queue a pipeline run for ``family``; it is started after commit.

    With a broker a Celery worker runs it. Without one (eager Celery) it runs
    in a daemon thread of this process when ``in_thread`` (default:
    :func:`job_runs_in_thread`), else inline, inside this call (commands and
    tests that want to wait). Refuses a second live job for the same family
    (they would share a work folder), and a new job while a cancelled one is
    still finishing its step.
    """
    if PipelineJob.objects.filter(
        family=family,
        status=PipelineJob.Status.CANCELLED,
        started_at__isnull=False,
        finished_at__isnull=True,
    ).exists():
        raise ConflictError(
            f"A cancelled job of '{family.slug}' is still finishing its current step; "
            "try again when it has stopped.",
            code="job_still_stopping",
        )
    try:
        with transaction.atomic():
            job = PipelineJob.objects.create(family=family, attempts=1)
    except IntegrityError:
        raise ConflictError(
            f"Model family '{family.slug}' already has a queued or running job.",
            code="job_already_live",
        ) from None
    transaction.on_commit(lambda: job_dispatch(job_id=job.pk, attempt=1, in_thread=in_thread))
    return job


def job_cancel(*, job: PipelineJob) -> PipelineJob:
    """Cancel a queued or running job.

    A queued job is finished at once. A running one is marked cancelled and
    its runner stops before its next step (a step is never interrupted, so
    its files stay whole; ``finished_at`` is set when it stops, or by the
    reaper if its worker is lost meanwhile). With a broker the Celery task is
    also revoked, so a worker that has not taken it yet never starts it.
    """
    now = timezone.now()
    updated = PipelineJob.objects.filter(pk=job.pk, status=PipelineJob.Status.QUEUED).update(
        status=PipelineJob.Status.CANCELLED,
        message="cancelled before it started",
        finished_at=now,
        updated_at=now,
    )
    if not updated:
        updated = PipelineJob.objects.filter(pk=job.pk, status=PipelineJob.Status.RUNNING).update(
            status=PipelineJob.Status.CANCELLED,
            message="cancelling: stops after the current step",
            updated_at=now,
        )
    if not updated:
        job.refresh_from_db()
        raise ConflictError(
            f"Job {job.pk} is {job.get_status_display().lower()}: only a queued or running "
            "job can be cancelled.",
            code="job_not_live",
        )
    if job.celery_task_id and not settings.CELERY_TASK_ALWAYS_EAGER:
        from config.celery_app import app

        app.control.revoke(job.celery_task_id)
    job.refresh_from_db()
    return job


def job_retry(*, job: PipelineJob) -> PipelineJob:
    """A new job for a failed or cancelled job's family: it resumes after the
    last finished step (the pipeline's done-markers), never redoing one."""
    if job.status not in PipelineJob.RETRYABLE:
        raise ConflictError(
            f"Job {job.pk} is {job.get_status_display().lower()}: only a failed or cancelled "
            "job can be retried.",
            code="job_not_retryable",
        )
    return job_create(family=job.family)


def _job_stopped(job_id: int, step: str) -> None:
    job_update(job_id, message=f"cancelled before step {step}"[:500], finished_at=timezone.now())


def _job_fail(job_id: int, exc: Exception) -> None:
    logger.exception("pipeline job %s failed", job_id)
    job_update(
        job_id,
        status=PipelineJob.Status.FAILED,
        error=f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}"[:20000],
        finished_at=timezone.now(),
    )


def _superseded(job: PipelineJob, attempt: int | None) -> bool:
    """A delivery of an attempt the reaper has since replaced by a newer one."""
    if attempt is None or attempt == job.attempts:
        return False
    logger.warning(
        "job %s: ignoring a delivery of attempt %s (the job is at attempt %s)",
        job.pk,
        attempt,
        job.attempts,
    )
    return True


def job_run_model_steps(*, job_id: int, attempt: int | None = None) -> PipelineJob:
    """First half of a job, on the ``gpu`` queue: data, training, pruning, selection,
    attribution. Idempotent: a redelivered job (worker killed, ``acks_late``)
    resumes from its last finished step; a finished CPR is never redone.
    ``attempt`` (from the task) makes a superseded delivery a no-op."""
    job = PipelineJob.objects.select_related("family").get(pk=job_id)
    if _superseded(job, attempt):
        return job
    started = PipelineJob.objects.filter(pk=job_id, status__in=PipelineJob.LIVE).update(
        status=PipelineJob.Status.RUNNING,
        started_at=job.started_at or timezone.now(),
        updated_at=timezone.now(),
        error="",
    )
    if not started:  # succeeded, failed or cancelled meanwhile: nothing to do
        if job.is_stopping:
            _job_stopped(job_id, job.step or "data")
        job.refresh_from_db()
        return job
    try:
        job_run_steps(job, cpu=False)
    except JobCancelled as stop:
        _job_stopped(job_id, str(stop))
    except Exception as exc:
        _job_fail(job_id, exc)
        raise
    job.refresh_from_db()
    return job


def job_finish(*, job_id: int, attempt: int | None = None) -> PipelineJob:
    """Second half, on the ``cpu`` queue: aggregate metrics, write the manifest,
    import variants, images and stimuli, mark the job succeeded. Idempotent
    (the import is keyed by natural keys; see ``pipeline_import_manifest``)."""
    job = PipelineJob.objects.select_related("family").get(pk=job_id)
    if _superseded(job, attempt):
        return job
    if job.status != PipelineJob.Status.RUNNING:  # succeeded, failed or cancelled
        if job.is_stopping:
            _job_stopped(job_id, "metrics")
            job.refresh_from_db()
        return job
    try:
        from workers.pipeline import load_manifest

        job_run_steps(job, cpu=True)
        workdir = family_workdir(job.family)
        pipeline_import_manifest(
            family=job.family, workdir=workdir, manifest=load_manifest(workdir)
        )
    except JobCancelled as stop:
        _job_stopped(job_id, str(stop))
        job.refresh_from_db()
        return job
    except Exception as exc:
        _job_fail(job_id, exc)
        raise
    PipelineJob.objects.filter(pk=job_id, status=PipelineJob.Status.RUNNING).update(
        updated_at=timezone.now(),
        status=PipelineJob.Status.SUCCEEDED,
        progress=1.0,
        step="done",
        message="finished",
        finished_at=timezone.now(),
    )
    job.refresh_from_db()
    return job
