"""Running a job's steps: progress, per-step timings, heartbeat and storage sync.

Shared by both halves of a job (``jobs.job_run_model_steps`` on the gpu queue,
``jobs.job_finish`` on the cpu queue). Before a half runs, the work folder is
pulled from the ``pipeline`` storage; after each step it is pushed back
(:mod:`apps.pipeline.services.workspace`). While a step runs, a small thread
refreshes the job's ``updated_at`` every ``PIPELINE_HEARTBEAT_SECONDS``: a job
whose heartbeat stops (worker killed, host lost) is found by the reaper.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from django.conf import settings
from django.db import OperationalError, connections
from django.utils import timezone

from apps.pipeline.config_check import family_pipeline_config
from apps.pipeline.models import PipelineJob
from apps.pipeline.services.workspace import family_workdir, workspace_pull, workspace_push

logger = logging.getLogger(__name__)

# Steps that need no model (aggregation, manifest): they run on the ``cpu`` queue.
CPU_STEPS = frozenset({"metrics", "manifest"})


class JobCancelled(Exception):
    """Raised inside the step loop when the job row says cancelled."""


def retry_locked(write: Callable[[], Any], *, attempts: int = 20) -> Any:
    """Run ``write``, retrying while SQLite says a table is locked.

    A job running in a thread of the web process (no broker) shares SQLite with
    the requests; its progress writes must not fail the job because a page was
    being read. (Shared-cache SQLite, as in tests, fails at once instead of
    waiting for its timeout.) Other databases never raise this.
    """
    for attempt in range(attempts):
        try:
            return write()
        except OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    return None


def job_update(job_id: int, **fields: Any) -> None:
    retry_locked(
        lambda: PipelineJob.objects.filter(pk=job_id).update(updated_at=timezone.now(), **fields)
    )


def heartbeat_seconds() -> float:
    return float(getattr(settings, "PIPELINE_HEARTBEAT_SECONDS", 30))


class job_heartbeat:  # noqa: N801 - a context manager, like contextlib's
    """Within the block, a daemon thread refreshes the job's ``updated_at`` every
    ``seconds`` (default ``PIPELINE_HEARTBEAT_SECONDS``), so a long step that
    reports no progress still shows its worker is alive. Only a running or
    still-stopping job is touched: a job the reaper failed stays failed."""

    def __init__(self, job_id: int, *, seconds: float | None = None) -> None:
        self.job_id = job_id
        self.seconds = heartbeat_seconds() if seconds is None else seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"pipeline-heartbeat-{job_id}", daemon=True
        )
        self.beats = 0

    def _beat(self) -> None:
        try:
            while not self._stop.wait(self.seconds):
                try:
                    PipelineJob.objects.filter(
                        pk=self.job_id,
                        status__in=(PipelineJob.Status.RUNNING, PipelineJob.Status.CANCELLED),
                        finished_at__isnull=True,
                    ).update(updated_at=timezone.now())
                    self.beats += 1
                except Exception:  # a missed beat must never fail the job
                    logger.warning("job %s: heartbeat failed", self.job_id, exc_info=True)
        finally:
            connections.close_all()  # this thread's connections only

    def __enter__(self) -> job_heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()


def _check_cancelled(job_id: int, step: str) -> None:
    status = retry_locked(
        lambda: PipelineJob.objects.values_list("status", flat=True).get(pk=job_id)
    )
    if status == PipelineJob.Status.CANCELLED:
        raise JobCancelled(step)


def job_run_steps(job: PipelineJob, *, cpu: bool) -> None:
    """Run the job's model steps (``cpu=False``) or its CPU steps, recording
    progress and per-step timings. Finished steps are skipped by ``run_step``
    (their done-markers, pulled from storage first)."""
    import workers.pipeline as pipeline

    family = job.family
    workdir = family_workdir(family)
    config = pipeline.PipelineConfig.from_dict(family_pipeline_config(family))
    steps = pipeline.pipeline_steps(config)
    timings: dict[str, float] = dict(
        PipelineJob.objects.values_list("timings", flat=True).get(pk=job.pk) or {}
    )
    workspace_pull(family=family)
    for index, step in enumerate(steps):
        if (step in CPU_STEPS) != cpu:
            continue
        _check_cancelled(job.pk, step)
        started = time.perf_counter()

        def progress(fraction: float, message: str, *, _index: int = index, _step: str = step):
            overall = (_index + max(0.0, min(1.0, fraction))) / len(steps)
            job_update(job.pk, progress=round(overall, 4), step=_step, message=message[:500])

        progress(0.0, "starting")
        logger.info("job %s: step %s (%d/%d) started", job.pk, step, index + 1, len(steps))
        with job_heartbeat(job.pk):
            pipeline.run_step(config, workdir, step, progress=progress)
            workspace_push(family=family)  # files, then the step's marker
        timings.setdefault(step, round(time.perf_counter() - started, 3))
        logger.info(
            "job %s: step %s finished in %.1f s", job.pk, step, time.perf_counter() - started
        )
        job_update(job.pk, timings=timings, progress=round((index + 1) / len(steps), 4))
