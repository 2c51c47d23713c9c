from __future__ import annotations

from django.db.models import QuerySet

from apps.pipeline.models import ModelFamily, ModelVariant, PipelineJob


def family_latest_job(*, family: ModelFamily) -> PipelineJob | None:
    return family.jobs.order_by("-created_at").first()


def family_variants(*, family: ModelFamily) -> QuerySet[ModelVariant]:
    return family.variants.order_by("cpr_target")
