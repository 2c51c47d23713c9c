"""A model family's pipeline configuration, and its check.

Kept apart from ``apps.pipeline.services`` so that ``apps.pipeline.models``
(``ModelFamily.clean``) can validate without importing the services, which
import the models: models never import services.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError

if TYPE_CHECKING:
    from apps.pipeline.models import ModelFamily


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

    Runs in ``ModelFamily.clean`` (admin forms, ``family_create``), so a
    misspelt option or a missing data folder setting is refused when the
    family is saved, not hours later on the worker.
    """
    from workers.pipeline import PipelineConfig  # imports torch: lazily

    try:
        PipelineConfig.from_dict(family_pipeline_config(family))
    except (TypeError, ValueError) as exc:
        raise ValidationError(str(exc)) from None
