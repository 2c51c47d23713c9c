from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from apps.pipeline.formatting import fmt_percent, fmt_seconds
from apps.pipeline.models import ModelFamily, ModelVariant, PipelineJob, SourceImage, Stimulus


def family_latest_job(*, family: ModelFamily) -> PipelineJob | None:
    return family.jobs.order_by("-created_at").first()


def family_variants(*, family: ModelFamily) -> QuerySet[ModelVariant]:
    return family.variants.order_by("cpr_target")


def job_progress(*, job: PipelineJob) -> dict[str, Any]:
    """What the admin's live job panel shows (its JSON endpoint returns this).

    Numbers come both raw and formatted (``apps.pipeline.formatting``) so the
    page's script only copies text. ``timings`` keeps the order steps finished.
    """
    now = timezone.now()
    end = job.finished_at or (now if job.started_at else None)
    elapsed = (end - job.started_at).total_seconds() if job.started_at and end else None
    timings = [
        {"step": step, "seconds": seconds, "display": fmt_seconds(seconds)}
        for step, seconds in (job.timings or {}).items()
    ]
    return {
        "id": job.pk,
        "family": job.family_id,
        "status": job.status,
        "status_display": job.get_status_display(),
        "live": job.status in PipelineJob.LIVE,
        "stopping": job.is_stopping,
        "can_cancel": job.status in PipelineJob.LIVE,
        "can_retry": job.status in PipelineJob.RETRYABLE and not job.is_stopping,
        "progress": job.progress,
        "progress_display": fmt_percent(job.progress),
        "step": job.step,
        "message": job.message,
        "error": job.error.split("\n", 1)[0][:300],
        "timings": timings,
        "total_display": fmt_seconds(sum(t["seconds"] for t in timings)) if timings else "",
        "elapsed_display": fmt_seconds(elapsed) if elapsed is not None else "",
    }


@dataclass
class GridRow:
    """One image (a real map, or one kind of catch stimulus) across the variants."""

    image: SourceImage
    catch: str
    cells: list[Stimulus | None]  # one per column, in column order


@dataclass
class StimulusGrid:
    variants: list[ModelVariant]
    rows: list[GridRow]
    kinds: list[str]
    methods: list[str]


def family_stimulus_grid(
    *, family: ModelFamily, kind: str, method: str, include_catch: bool = False
) -> StimulusGrid:
    """Images x variants (by CPR) for one kind and method: one query for the stimuli.

    Real maps (``catch == ""``) only, unless ``include_catch``: then each image
    gets one further row per catch kind it has.
    """
    variants = list(family_variants(family=family))
    column = {v.pk: i for i, v in enumerate(variants)}
    stimuli = Stimulus.objects.filter(variant__family=family, kind=kind, method=method)
    if not include_catch:
        stimuli = stimuli.filter(catch="")
    rows: dict[tuple[int, str], GridRow] = {}
    for stimulus in stimuli.select_related("image", "variant").order_by(
        "image__class_index", "image__key", "catch"
    ):
        key = (stimulus.image_id, stimulus.catch)
        row = rows.get(key)
        if row is None:
            row = rows[key] = GridRow(stimulus.image, stimulus.catch, [None] * len(variants))
        row.cells[column[stimulus.variant_id]] = stimulus
    family_stimuli = Stimulus.objects.filter(variant__family=family)
    return StimulusGrid(
        variants=variants,
        rows=list(rows.values()),
        kinds=sorted(set(family_stimuli.values_list("kind", flat=True))),
        methods=sorted(set(family_stimuli.values_list("method", flat=True))),
    )
