"""Study design: create studies and experiments and check an experiment's design.

Every write is keyword-only, runs in one transaction and returns the model it
wrote; a design a launch would refuse is refused here, naming the problem.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils.text import slugify

from apps.core.exceptions import ApplicationError, ConflictError
from apps.pipeline.models import ModelFamily, ModelVariant
from apps.studies.models import Experiment, Study


@transaction.atomic
def study_create(
    *,
    name: str,
    family: ModelFamily,
    slug: str | None = None,
    description: str = "",
    seed: int = 0,
    created_by: Any = None,
) -> Study:
    study = Study(
        name=name,
        slug=slug or slugify(name)[:80],
        description=description,
        family=family,
        seed=seed,
        created_by=created_by,
    )
    study.full_clean()
    study.save()
    return study


@transaction.atomic
def experiment_create(
    *,
    study: Study,
    slug: str,
    name: str,
    kind: str,
    stimulus_kind: str,
    scale_points: int | None = None,
    pairs: list[list[str]] | None = None,
    conditions: list[str] | None = None,
    method: str = "gradcam",
    images_per_class: int = 3,
    answers_per_task: int = 5,
    tasks_per_rater: int = 20,
    one_task_per_image: bool = True,
    lease_seconds: int | None = None,
    instructions: str = "",
    position: int | None = None,
    min_viewing_ms: int = 0,
    min_screen_width: int = 0,
    catch_percent: int | None = None,
    practice_trials: int | None = None,
    attention_checks: int | None = None,
    probe_percent: int | None = None,
    consent_text: str = "",
    reopen_excluded: bool = True,
) -> Experiment:
    """Add an experiment to a draft study. A ``None`` check setting keeps the model's
    default (catch trials, practice trials, attention checks, probes)."""
    checks = {
        name: value
        for name, value in (
            ("catch_percent", catch_percent),
            ("practice_trials", practice_trials),
            ("attention_checks", attention_checks),
            ("probe_percent", probe_percent),
        )
        if value is not None
    }
    if study.status != Study.Status.DRAFT:
        raise ConflictError(f"Study '{study.slug}' is {study.status}; add experiments to a draft.")
    experiment = Experiment(
        study=study,
        slug=slug,
        name=name,
        kind=kind,
        stimulus_kind=stimulus_kind,
        scale_points=scale_points,
        pairs=[list(p) for p in pairs or []],
        conditions=list(conditions or []),
        method=method,
        images_per_class=images_per_class,
        answers_per_task=answers_per_task,
        tasks_per_rater=tasks_per_rater,
        one_task_per_image=one_task_per_image,
        **({"lease_seconds": lease_seconds} if lease_seconds is not None else {}),
        instructions=instructions,
        min_viewing_ms=min_viewing_ms,
        min_screen_width=min_screen_width,
        consent_text=consent_text,
        reopen_excluded=reopen_excluded,
        **checks,
        position=study.experiments.count() if position is None else position,
    )
    experiment.full_clean()
    experiment_check_design(experiment)
    experiment.save()
    return experiment


def variants_by_label(family: ModelFamily) -> dict[str, ModelVariant]:
    return {v.label: v for v in family.variants.all()}


def experiment_check_design(experiment: Experiment) -> None:
    """Raise ``ApplicationError`` naming what is wrong with an experiment's design."""
    family = experiment.study.family
    variants = variants_by_label(family)
    where = f"Experiment '{experiment.slug}'"
    if experiment.is_pairwise:
        if experiment.scale_points not in (3, 5, 7):
            raise ApplicationError(f"{where}: a pairwise experiment needs 3, 5 or 7 scale points.")
        if not experiment.pairs:
            raise ApplicationError(f"{where}: list at least one pair of variants to compare.")
        labels = [label for pair in experiment.pairs for label in pair]
        if any(len(pair) != 2 or pair[0] == pair[1] for pair in experiment.pairs):
            raise ApplicationError(f"{where}: each pair must name two different variants.")
    else:
        if experiment.scale_points is not None:
            raise ApplicationError(f"{where}: forced choice has no scale points.")
        if not experiment.conditions:
            raise ApplicationError(f"{where}: list at least one variant to show.")
        labels = list(experiment.conditions)
    unknown = sorted(set(labels) - set(variants))
    if unknown:
        known = ", ".join(sorted(variants, key=lambda lab: variants[lab].cpr_target)) or "none"
        raise ApplicationError(
            f"{where}: unknown variant(s) {', '.join(unknown)} in model family "
            f"'{family.slug}' (known: {known})."
        )
