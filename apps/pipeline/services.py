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
from django.db import IntegrityError, transaction
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


def job_create(*, family: ModelFamily) -> PipelineJob:
    """Queue a pipeline run for ``family``; the task is sent after commit.

    Refuses a second live job for the same family (they would share a work folder).
    """
    try:
        with transaction.atomic():
            job = PipelineJob.objects.create(family=family)
    except IntegrityError:
        raise ConflictError(
            f"Model family '{family.slug}' already has a queued or running job.",
            code="job_already_live",
        ) from None

    def _dispatch() -> None:
        from workers.tasks import pipeline_run_job

        result = pipeline_run_job.delay(job.pk)
        PipelineJob.objects.filter(pk=job.pk).update(celery_task_id=result.id or "")

    transaction.on_commit(_dispatch)
    return job


def _job_update(job_id: int, **fields: Any) -> None:
    PipelineJob.objects.filter(pk=job_id).update(updated_at=timezone.now(), **fields)


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
    if job.status == PipelineJob.Status.SUCCEEDED:
        return job
    _job_update(
        job_id,
        status=PipelineJob.Status.RUNNING,
        started_at=job.started_at or timezone.now(),
        error="",
    )
    try:
        _job_run_steps(job, cpu=False)
    except Exception as exc:
        _job_fail(job_id, exc)
        raise
    job.refresh_from_db()
    return job


def job_finish(*, job_id: int) -> PipelineJob:
    """Second half, on the ``cpu`` queue: aggregate metrics, write the manifest,
    import variants, images and stimuli, mark the job succeeded. Idempotent."""
    job = PipelineJob.objects.select_related("family").get(pk=job_id)
    if job.status == PipelineJob.Status.SUCCEEDED:
        return job
    try:
        from workers.pipeline import load_manifest

        _job_run_steps(job, cpu=True)
        workdir = family_workdir(job.family)
        pipeline_import_manifest(
            family=job.family, workdir=workdir, manifest=load_manifest(workdir)
        )
    except Exception as exc:
        _job_fail(job_id, exc)
        raise
    _job_update(
        job_id,
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
    if job is None or job.status == PipelineJob.Status.FAILED:
        try:
            job = job_create(family=family)
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
        if job.status in (PipelineJob.Status.SUCCEEDED, PipelineJob.Status.FAILED):
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
