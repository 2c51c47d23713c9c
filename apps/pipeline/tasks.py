"""Celery tasks of the pipeline app: thin adapters over ``apps.pipeline.services``.

Routing (``CELERY_TASK_ROUTES`` in config/settings.py): ``pipeline.run_job``
goes to the ``gpu`` queue, ``pipeline.finish_job`` and
``pipeline.reap_stale_jobs`` to ``cpu``. Tasks take ids, are idempotent and
``acks_late`` (with ``CELERY_TASK_REJECT_ON_WORKER_LOST``): a worker killed
mid-job gets its job redelivered, and the job resumes from its last finished
step. A job whose worker is lost for good (host gone) is found by the reaper.
"""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

TRANSIENT_ERRORS = (OperationalError, InterfaceError, ConnectionError)
# Both halves of a job: acknowledged after they finish (a killed worker's job is
# redelivered and resumes), retried with back-off on transient database/broker errors.
JOB_TASK_OPTIONS = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": True,
    "max_retries": 5,
}


@shared_task(name="pipeline.run_job", **JOB_TASK_OPTIONS)
def run_job(job_id: int, attempt: int | None = None) -> str:
    """Model steps (gpu queue), then hands the job to the cpu queue.

    ``attempt``: the job's attempt this delivery belongs to; a delivery
    superseded by the reaper's re-queue does nothing."""
    from apps.pipeline.services import job_run_model_steps

    job = job_run_model_steps(job_id=job_id, attempt=attempt)
    if job.status == job.Status.RUNNING or job.is_stopping:
        finish_job.delay(job_id, attempt)
    return job.status


@shared_task(name="pipeline.finish_job", **JOB_TASK_OPTIONS)
def finish_job(job_id: int, attempt: int | None = None) -> str:
    """Metrics aggregation, manifest and database import (cpu queue)."""
    from apps.pipeline.services import job_finish

    return job_finish(job_id=job_id, attempt=attempt).status


@shared_task(
    name="pipeline.reap_stale_jobs",
    autoretry_for=TRANSIENT_ERRORS,
    max_retries=2,
    ignore_result=True,
)
def reap_stale_jobs() -> list[int]:
    """Periodic (Celery beat, every minute): re-queue or fail jobs whose worker was lost."""
    from apps.pipeline.services import jobs_reap_stale

    return jobs_reap_stale()
