"""Run a pipeline job in a background thread of this process (no broker).

Without ``CELERY_BROKER_URL`` Celery is eager: ``.delay()`` would run the
whole job inside the caller, so an admin request would block for the job's
minutes. :func:`job_start_thread` runs the same two halves as the Celery
tasks (``job_run_model_steps`` then ``job_finish``) in a daemon thread and
returns at once; the admin follows the job row.
"""

from __future__ import annotations

import logging
import threading

from django.db import connections
from django.utils import timezone

logger = logging.getLogger(__name__)


def _run(job_id: int, attempt: int | None) -> None:
    from apps.pipeline.models import PipelineJob
    from apps.pipeline.services import job_finish, job_run_model_steps

    try:
        job = job_run_model_steps(job_id=job_id, attempt=attempt)
        if job.status == PipelineJob.Status.RUNNING or job.is_stopping:
            job_finish(job_id=job_id, attempt=attempt)
    except Exception as exc:  # the services record their own failures; this is the backstop
        logger.exception("pipeline job %s failed in its thread", job_id)
        PipelineJob.objects.filter(pk=job_id, status__in=PipelineJob.LIVE).update(
            status=PipelineJob.Status.FAILED,
            error=f"{type(exc).__name__}: {exc}"[:20000],
            finished_at=timezone.now(),
            updated_at=timezone.now(),
        )
    finally:
        connections.close_all()  # this thread's connections only (they are thread-local)


def job_start_thread(*, job_id: int, attempt: int | None = None) -> threading.Thread:
    """Start the job in a daemon thread and return it (tests may ``join`` it)."""
    thread = threading.Thread(
        target=_run, args=(job_id, attempt), name=f"pipeline-job-{job_id}", daemon=True
    )
    thread.start()
    return thread
