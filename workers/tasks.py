"""Thin Celery adapters. Compute lives in ``workers.*`` (pure PyTorch);
database writes in ``apps.*.services``. Imports happen inside the task bodies
so that the web process never imports torch.

Routing (config/settings.py): ``pipeline_*`` tasks go to the ``gpu`` queue,
``cpu_*`` tasks to ``cpu``. All tasks take ids, are idempotent and
``acks_late``: a worker killed mid-job gets its job redelivered, and the job
resumes from its last finished step.
"""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

TRANSIENT_ERRORS = (OperationalError, InterfaceError, ConnectionError)
# Both halves of a job: acknowledged after they finish (a killed worker's job is
# redelivered and resumes), retried with back-off on transient database/broker errors.
JOB_TASK_OPTIONS = {
    "acks_late": True,
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": True,
    "max_retries": 5,
}


@shared_task(name="workers.tasks.pipeline_run_job", **JOB_TASK_OPTIONS)
def pipeline_run_job(job_id: int) -> str:
    """Model steps (gpu queue), then hands the job to the cpu queue."""
    from apps.pipeline.services import job_run_model_steps

    job = job_run_model_steps(job_id=job_id)
    if job.status != job.Status.SUCCEEDED:
        cpu_finish_job.delay(job_id)
    return job.status


@shared_task(name="workers.tasks.cpu_finish_job", **JOB_TASK_OPTIONS)
def cpu_finish_job(job_id: int) -> str:
    """Metrics aggregation, manifest and database import (cpu queue)."""
    from apps.pipeline.services import job_finish

    return job_finish(job_id=job_id).status


@shared_task(
    name="workers.tasks.cpu_expire_leases",
    autoretry_for=TRANSIENT_ERRORS,
    max_retries=2,
    ignore_result=True,
)
def cpu_expire_leases() -> int:
    """Periodic (Celery beat, every minute): free answer slots whose lease ran out.

    Claims treat an expired lease as free on their own; this keeps the
    slots tidy and the admin's "on screen now" figure exact.
    """
    from apps.core import clock
    from apps.studies.allocation import leases_expire

    return leases_expire(now=clock.now())


@shared_task(
    name="workers.tasks.cpu_quality_pass",
    autoretry_for=TRANSIENT_ERRORS,
    max_retries=2,
    ignore_result=True,
)
def cpu_quality_pass() -> int:
    """Periodic (Celery beat, ``QUALITY_PASS_SECONDS``): judge the raters of live studies,
    exclude per the quality rules and reopen their slots (``apps.studies.services.quality``)."""
    from apps.studies.services.quality import live_studies_quality_pass

    return sum(len(p.excluded) for p in live_studies_quality_pass().values())


@shared_task(name="workers.tasks.cpu_study_analyze", **JOB_TASK_OPTIONS)
def cpu_study_analyze(study_id: int, run_id: int) -> str:
    """The results page's analysis of one state of a study (cpu queue); its row is ``run_id``."""
    from apps.analysis.services import analysis_run_execute

    return analysis_run_execute(study_id=study_id, run_id=run_id).status
