"""Reads of the researcher API; each study-scoped one through ``studies_visible_to``.

A study outside the caller's visible set raises :class:`NotFoundError` with
the same message as a study that does not exist, so the API never reveals
another researcher's study.
"""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from apps.core.exceptions import NotFoundError
from apps.pipeline.models import ModelFamily, ModelVariant
from apps.studies.models import Experiment, Participation, Study
from apps.studies.permissions import can_manage_study, studies_visible_to


def _variants() -> Prefetch:
    return Prefetch("variants", queryset=ModelVariant.objects.order_by("cpr_target"))


def family_list() -> QuerySet[ModelFamily]:
    """Model families are a shared catalogue (no owner): every researcher sees all of them."""
    return ModelFamily.objects.prefetch_related(_variants()).order_by("name", "pk")


def family_get(*, slug: str) -> ModelFamily:
    family = family_list().filter(slug=slug).first()
    if family is None:
        raise NotFoundError(f"No model family '{slug}'.", code="not_found")
    return family


def study_list(*, user) -> QuerySet[Study]:
    return studies_visible_to(user).select_related("family", "created_by").order_by("-created_at")


def study_get(*, user, slug: str) -> Study:
    """The study ``slug`` if ``user`` may see it; else a 404 that does not reveal it exists."""
    study = (
        studies_visible_to(user)
        .select_related("family", "created_by")
        .prefetch_related(
            Prefetch("experiments", queryset=Experiment.objects.order_by("position", "pk"))
        )
        .filter(slug=slug)
        .first()
    )
    if study is None:
        raise NotFoundError(f"No study '{slug}' visible to you.", code="not_found")
    return study


def study_get_managed(*, user, slug: str) -> Study:
    """The study ``slug`` if ``user`` may act on it (launch, pause, download, results)."""
    study = study_get(user=user, slug=slug)
    if not can_manage_study(user, study):  # the same rule today; kept explicit for actions
        raise NotFoundError(f"No study '{slug}' visible to you.", code="not_found")
    return study


def participation_list(
    *, study: Study, experiment: str | None = None, excluded: bool | None = None
) -> QuerySet[Participation]:
    """The study's participations with rater and experiment, in experiment then join order."""
    rows = Participation.objects.filter(experiment__study=study)
    if experiment is not None:
        if not study.experiments.filter(slug=experiment).exists():
            raise NotFoundError(
                f"Study '{study.slug}' has no experiment '{experiment}'.", code="not_found"
            )
        rows = rows.filter(experiment__slug=experiment)
    if excluded is not None:
        rows = rows.filter(excluded_at__isnull=not excluded)
    return rows.select_related("rater", "experiment").order_by(
        "experiment__position", "experiment_id", "created_at", "pk"
    )
