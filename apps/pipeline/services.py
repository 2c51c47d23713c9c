"""Writes for model families, pipeline jobs and their results.

The compute lives in ``workers.pipeline`` (pure PyTorch). This module owns the
job row (status, progress, error, timings) and copies the pipeline's manifest
into the database: variants, source images and stimuli, the latter two under
opaque file names so that no URL reveals a class or a CPR.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, OperationalError, transaction
from django.utils import timezone
from django.utils.text import slugify

from apps.core.exceptions import ConflictError
from apps.core.files import copy_into_storage, opaque_name
from apps.pipeline.models import ModelFamily, ModelVariant, PipelineJob, SourceImage, Stimulus
from apps.pipeline.selectors import family_latest_job

logger = logging.getLogger(__name__)


def family_workdir(family: ModelFamily) -> Path:
    return Path(settings.PIPELINE_ROOT) / family.slug


def family_pipeline_config(family: ModelFamily) -> dict[str, Any]:
    """The ``workers.pipeline.PipelineConfig`` fields for this family."""
    config: dict[str, Any] = dict(family.config or {})
    config.update(
        dataset=family.dataset,
        architecture=family.architecture,
        prune_method=family.prune_method,
        schedule=family.schedule,
        cprs=[float(c) for c in family.cprs],
        seed=family.seed,
    )
    if family.data_root:
        config["data_root"] = family.data_root
    return config


def family_check_config(family: ModelFamily) -> None:
    """Raise ``ValidationError`` naming every problem if the family's pipeline config is bad.

    Runs in ``ModelFamily.clean`` (admin forms, :func:`family_create`), so a
    misspelt option or a missing data folder setting is refused when the
    family is saved, not hours later on the worker.
    """
    from workers.pipeline import PipelineConfig

    try:
        PipelineConfig.from_dict(family_pipeline_config(family))
    except (TypeError, ValueError) as exc:
        raise ValidationError(str(exc)) from None


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


def job_runs_in_thread() -> bool:
    """Whether a launched job runs in a background thread of this process.

    ``PIPELINE_RUN_IN_THREAD`` (default: on exactly when Celery is eager, i.e.
    no broker): an eager task would otherwise run inside the admin request and
    block it for the whole job. Tests that want the old synchronous eager run
    set it to ``False``.
    """
    return bool(getattr(settings, "PIPELINE_RUN_IN_THREAD", settings.CELERY_TASK_ALWAYS_EAGER))


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
            job = PipelineJob.objects.create(family=family)
    except IntegrityError:
        raise ConflictError(
            f"Model family '{family.slug}' already has a queued or running job.",
            code="job_already_live",
        ) from None
    if in_thread is None:
        in_thread = job_runs_in_thread()
    if in_thread and settings.CELERY_TASK_ALWAYS_EAGER:
        from apps.pipeline.runner import job_start_thread

        transaction.on_commit(lambda: job_start_thread(job_id=job.pk))
        return job

    def _dispatch() -> None:
        from workers.tasks import pipeline_run_job

        result = pipeline_run_job.delay(job.pk)
        PipelineJob.objects.filter(pk=job.pk).update(celery_task_id=result.id or "")

    transaction.on_commit(_dispatch)
    return job


def job_cancel(*, job: PipelineJob) -> PipelineJob:
    """Cancel a queued or running job.

    A queued job is finished at once. A running one is marked cancelled and
    its runner stops before its next step (a step is never interrupted, so
    its files stay whole; ``finished_at`` is set when it stops). With a
    broker the Celery task is also revoked, so a worker that has not taken it
    yet never starts it.
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


class JobCancelled(Exception):
    """Raised inside the step loop when the job row says cancelled."""


def _job_check_cancelled(job_id: int, step: str) -> None:
    status = _retry_locked(
        lambda: PipelineJob.objects.values_list("status", flat=True).get(pk=job_id)
    )
    if status == PipelineJob.Status.CANCELLED:
        raise JobCancelled(step)


def _job_stopped(job_id: int, step: str) -> None:
    _job_update(job_id, message=f"cancelled before step {step}"[:500], finished_at=timezone.now())


def _retry_locked(write: Callable[[], Any], *, attempts: int = 20) -> Any:
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


def _job_update(job_id: int, **fields: Any) -> None:
    _retry_locked(
        lambda: PipelineJob.objects.filter(pk=job_id).update(updated_at=timezone.now(), **fields)
    )


# Steps that need no model (aggregation, manifest): they run on the ``cpu`` queue.
CPU_STEPS = frozenset({"metrics", "manifest"})


def _job_run_steps(job: PipelineJob, *, cpu: bool) -> None:
    """Run the job's model steps (``cpu=False``) or its CPU steps, recording
    progress and per-step timings. Finished steps are skipped by ``run_step``."""
    from workers.pipeline import PipelineConfig, pipeline_steps, run_step

    family = job.family
    workdir = family_workdir(family)
    config = PipelineConfig.from_dict(family_pipeline_config(family))
    steps = pipeline_steps(config)
    timings: dict[str, float] = dict(
        PipelineJob.objects.values_list("timings", flat=True).get(pk=job.pk) or {}
    )
    for index, step in enumerate(steps):
        if (step in CPU_STEPS) != cpu:
            continue
        _job_check_cancelled(job.pk, step)
        started = time.perf_counter()

        def progress(fraction: float, message: str, *, _index: int = index, _step: str = step):
            overall = (_index + max(0.0, min(1.0, fraction))) / len(steps)
            _job_update(job.pk, progress=round(overall, 4), step=_step, message=message[:500])

        progress(0.0, "starting")
        logger.info("job %s: step %s (%d/%d) started", job.pk, step, index + 1, len(steps))
        run_step(config, workdir, step, progress=progress)
        timings.setdefault(step, round(time.perf_counter() - started, 3))
        logger.info(
            "job %s: step %s finished in %.1f s", job.pk, step, time.perf_counter() - started
        )
        _job_update(job.pk, timings=timings, progress=round((index + 1) / len(steps), 4))


def _job_fail(job_id: int, exc: Exception) -> None:
    logger.exception("pipeline job %s failed", job_id)
    _job_update(
        job_id,
        status=PipelineJob.Status.FAILED,
        error=f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}"[:20000],
        finished_at=timezone.now(),
    )


def job_run_model_steps(*, job_id: int) -> PipelineJob:
    """First half of a job, on the ``gpu`` queue: data, training, pruning, selection,
    attribution. Idempotent: a redelivered job (worker killed, ``acks_late``)
    resumes from its last finished step; a finished CPR is never redone."""
    job = PipelineJob.objects.select_related("family").get(pk=job_id)
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
        _job_run_steps(job, cpu=False)
    except JobCancelled as stop:
        _job_stopped(job_id, str(stop))
    except Exception as exc:
        _job_fail(job_id, exc)
        raise
    job.refresh_from_db()
    return job


def job_finish(*, job_id: int) -> PipelineJob:
    """Second half, on the ``cpu`` queue: aggregate metrics, write the manifest,
    import variants, images and stimuli, mark the job succeeded. Idempotent."""
    job = PipelineJob.objects.select_related("family").get(pk=job_id)
    if job.status != PipelineJob.Status.RUNNING:  # succeeded, failed or cancelled
        if job.is_stopping:
            _job_stopped(job_id, "metrics")
            job.refresh_from_db()
        return job
    try:
        from workers.pipeline import load_manifest

        _job_run_steps(job, cpu=True)
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


@transaction.atomic
def pipeline_import_manifest(
    *, family: ModelFamily, workdir: Path, manifest: dict[str, Any]
) -> ModelFamily:
    """Create or update variants, images and stimuli from a pipeline manifest.

    Idempotent: rows are keyed by their natural keys (a stimulus by image,
    variant, kind, method and ``catch``: "" for a real map, "rot180"/"light"
    for a catch stimulus); files already imported keep their opaque names and
    are not copied again.
    """
    family.class_names = list(manifest["class_names"])
    family.target_layer = manifest.get("target_layer", "")
    family.save(update_fields=["class_names", "target_layer", "updated_at"])

    variants: dict[str, ModelVariant] = {}
    for row in manifest["variants"]:
        variant, _ = ModelVariant.objects.update_or_create(
            family=family,
            label=row["label"],
            defaults={
                "cpr_target": float(row["cpr_target"]),
                "cpr_measured": float(row["cpr_measured"]),
                "conv_sparsity": float(row["conv_sparsity"]),
                "train_accuracy": row.get("train_accuracy"),
                "val_accuracy": row.get("val_accuracy"),
                "test_accuracy": row.get("test_accuracy"),
                "checkpoint": str(workdir / row["checkpoint"]) if row.get("checkpoint") else "",
                "checkpoint_sha256": row.get("checkpoint_sha256", ""),
                "details": {k: row[k] for k in ("per_layer", "timings", "schedule") if k in row},
            },
        )
        variants[variant.label] = variant

    existing_images = {img.key: img for img in family.images.all()}
    images: dict[str, SourceImage] = {}
    for row in manifest["images"]:
        image = existing_images.get(row["key"])
        if image is None:
            image = SourceImage(family=family, key=row["key"])
            image.file = copy_into_storage(
                source=workdir / row["file"], name=opaque_name(prefix="img")
            )
            if row.get("mask"):
                image.mask_file = copy_into_storage(
                    source=workdir / row["mask"], name=opaque_name(prefix="mask")
                )
        image.class_index = int(row["class_index"])
        image.class_name = family.class_names[image.class_index]
        image.split = row.get("split", "test")
        image.save()
        images[image.key] = image

    existing_stimuli = {
        (s.image_id, s.variant_id, s.kind, s.method, s.catch): s
        for s in Stimulus.objects.filter(variant__family=family)
    }
    for row in manifest["stimuli"]:
        image = images[row["image_key"]]
        variant = variants[row["variant"]]
        method = row.get("method", "gradcam")
        catch = row.get("catch") or ""
        stimulus = existing_stimuli.get((image.pk, variant.pk, row["kind"], method, catch))
        if stimulus is None:
            stimulus = Stimulus(
                image=image, variant=variant, kind=row["kind"], method=method, catch=catch
            )
            # Catch stimuli share the prefix and the random name of real ones: no URL tells.
            stimulus.file = copy_into_storage(
                source=workdir / row["file"], name=opaque_name(prefix="s")
            )
        stimulus.predicted_class = int(row["predicted_class"])
        stimulus.is_blank = bool(row.get("blank", False))
        stimulus.metrics = row.get("metrics") or {}
        stimulus.provenance = row.get("provenance") or {}
        stimulus.save()
    return family
