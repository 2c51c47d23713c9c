"""The stale-job reaper: no job stays "running" after its worker is gone.

A running step refreshes its job's ``updated_at`` (the heartbeat, every
``PIPELINE_HEARTBEAT_SECONDS``). A worker killed mid-job (SIGKILL, out of
memory, host lost) stops beating; Celery beat calls :func:`jobs_reap_stale`
every minute, which re-queues such a job (it resumes from its done-markers)
up to ``PIPELINE_MAX_ATTEMPTS`` times, then marks it failed.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.pipeline.models import PipelineJob
from apps.pipeline.services import jobs

logger = logging.getLogger(__name__)


def stale_seconds() -> int:
    return int(getattr(settings, "PIPELINE_STALE_SECONDS", 600))


def max_attempts() -> int:
    return int(getattr(settings, "PIPELINE_MAX_ATTEMPTS", 3))


def _requeue(job_id: int, attempt: int) -> None:
    jobs.job_dispatch(job_id=job_id, attempt=attempt)


def _stale_running(cutoff: datetime) -> list[PipelineJob]:
    """Running jobs silent since before ``cutoff`` (read without a lock: each is then
    changed by a conditional UPDATE, which a concurrent reaper may win instead)."""
    return list(
        PipelineJob.objects.filter(
            status=PipelineJob.Status.RUNNING, updated_at__lt=cutoff
        ).order_by("pk")
    )


def jobs_reap_stale(*, now: datetime | None = None) -> list[int]:
    """Re-queue, fail or finish every job whose heartbeat is older than
    ``PIPELINE_STALE_SECONDS``; returns the ids of the jobs it changed.

    - RUNNING, fewer than ``PIPELINE_MAX_ATTEMPTS`` attempts: re-queued
      (``attempts`` + 1, dispatched again after commit; the new attempt
      resumes from the step markers in storage).
    - RUNNING, out of attempts: FAILED with "worker lost (no heartbeat for N s,
      M attempts)".
    - CANCELLED but still stopping (``finished_at`` unset): finished.

    Safe against two reapers at once (two beats, or beat and a manual run):
    each change is a conditional UPDATE on the ``updated_at`` it read, so only
    one of them wins a job and only the winner dispatches it.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=stale_seconds())
    limit = max_attempts()
    changed: list[int] = []
    for job in _stale_running(cutoff):
        silent = int((now - job.updated_at).total_seconds())
        attempts = max(job.attempts, 1)
        same = PipelineJob.objects.filter(
            pk=job.pk, status=PipelineJob.Status.RUNNING, updated_at=job.updated_at
        )
        if attempts < limit:
            attempt = attempts + 1
            won = same.update(
                attempts=attempt,
                updated_at=now,
                message=f"worker lost (no heartbeat for {silent} s); "
                f"re-queued, attempt {attempt} of {limit}",
            )
            if won:
                logger.warning("job %s: worker lost, re-queued (attempt %d)", job.pk, attempt)
                transaction.on_commit(partial(_requeue, job.pk, attempt))
        else:
            reason = f"worker lost (no heartbeat for {silent} s, {attempts} attempts)"
            won = same.update(
                status=PipelineJob.Status.FAILED,
                error=reason,
                message=reason,
                finished_at=now,
                updated_at=now,
            )
            if won:
                logger.error("job %s: %s", job.pk, reason)
        if won:
            changed.append(job.pk)
    stopping = PipelineJob.objects.filter(
        status=PipelineJob.Status.CANCELLED,
        started_at__isnull=False,
        finished_at__isnull=True,
        updated_at__lt=cutoff,
    )
    for job in stopping.order_by("pk"):
        silent = int((now - job.updated_at).total_seconds())
        won = PipelineJob.objects.filter(
            pk=job.pk, finished_at__isnull=True, updated_at=job.updated_at
        ).update(
            finished_at=now,
            updated_at=now,
            message=f"cancelled; its worker was lost before it stopped "
            f"(no heartbeat for {silent} s)",
        )
        if won:
            changed.append(job.pk)
    return changed
