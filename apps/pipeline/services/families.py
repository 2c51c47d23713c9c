"""Model families: create one, and build it (run its pipeline, waiting for the job)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils.text import slugify

from apps.pipeline.models import ModelFamily, PipelineJob
from apps.pipeline.selectors import family_latest_job
from apps.pipeline.services.jobs import job_create


@transaction.atomic
def family_create(
    *,
    name: str,
    dataset: str = ModelFamily.Dataset.GENERATED,
    architecture: str = "demo_vgg",
    cprs: list[float] | None = None,
    prune_method: str = ModelFamily.PruneMethod.GLOBAL,
    schedule: str = ModelFamily.Schedule.ITERATIVE,
    data_root: str = "",
    seed: int = 0,
    config: dict[str, Any] | None = None,
    slug: str | None = None,
) -> ModelFamily:
    family = ModelFamily(
        name=name,
        slug=slug or slugify(name)[:80],
        dataset=dataset,
        architecture=architecture,
        cprs=list(cprs if cprs is not None else [2, 4, 8, 16, 32]),
        prune_method=prune_method,
        schedule=schedule,
        data_root=data_root,
        seed=seed,
        config=config or {},
    )
    family.full_clean()
    family.save()
    return family


def family_build(
    *, family: ModelFamily, report: Callable[[str], None], poll_seconds: float = 2.0
) -> PipelineJob:
    """Run the family's pipeline unless it already succeeded, and wait for the job.

    A failed job is queued again (finished steps are kept, so it resumes). In
    eager mode (no broker) the job runs inside ``job_create``; with a broker a
    worker runs it and this waits, reporting progress.
    """
    job = family_latest_job(family=family)
    if job is not None and job.status == PipelineJob.Status.SUCCEEDED:
        report(f"Pipeline already finished (job {job.pk}); reusing its models and maps.")
        return job
    if job is None or job.status in PipelineJob.RETRYABLE:
        try:
            job = job_create(family=family, in_thread=False)
        except Exception:  # eager mode re-raises the task's error; the job row holds it
            job = family_latest_job(family=family)
            assert job is not None
    last = ""
    waited = 0.0
    while True:
        job.refresh_from_db()
        line = f"  job {job.pk}: {job.status} {100 * job.progress:.0f}% {job.step} {job.message}"
        if line != last:
            report(line)
            last = line
        if job.status == PipelineJob.Status.QUEUED and waited and waited % 30 < poll_seconds:
            report(
                "  still queued: is a Celery worker running for the gpu and cpu queues? "
                "(`make worker`, or unset CELERY_BROKER_URL to run in-process)"
            )
        if job.status in (PipelineJob.Status.SUCCEEDED, *PipelineJob.RETRYABLE):
            return job
        time.sleep(poll_seconds)
        waited += poll_seconds
