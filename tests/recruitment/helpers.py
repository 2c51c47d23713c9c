"""Studies published on a provider, and raters who take part through it."""

from __future__ import annotations

from decimal import Decimal

from apps.recruitment.models import Publication
from apps.recruitment.services import publications_prepare
from apps.studies.models import Experiment, Participation, Rater, Study
from tests.studies.helpers import answer_all, join, launched_study


def published_study(
    *,
    provider: str = "mturk",
    sandbox: bool = False,
    slug: str = "rec",
    reward: str = "1.50",
    bonus: str = "0.00",
    tasks_per_rater: int = 5,
    options: dict | None = None,
    **study_kwargs,
) -> tuple[Study, list[Publication]]:
    """A launched study (pairwise ``pw`` + forced-choice ``fc``) with draft publications."""
    study = launched_study(slug=slug, tasks_per_rater=tasks_per_rater, **study_kwargs)
    publications = publications_prepare(
        study=study,
        provider=provider,
        sandbox=sandbox,
        reward=Decimal(reward),
        bonus=Decimal(bonus),
        options=options,
    )
    return study, publications


def crowd_rater_finishes(
    experiment: Experiment, *, source: str, worker_id: str, session: dict[str, str]
) -> Participation:
    """A crowd worker joins ``experiment`` and answers until nothing is left for them."""
    participation = join(experiment, source=source, worker_id=worker_id, session=session)
    answer_all(participation)
    participation.refresh_from_db()
    return participation


MTURK = Rater.Source.MTURK
PROLIFIC = Rater.Source.PROLIFIC
