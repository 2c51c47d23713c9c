"""Publishing a study's experiments on a provider: prepare the rows, show the plan, publish.

``publications_prepare`` writes one :class:`Publication` per experiment (or
finds it: running ``publish`` again creates nothing new); ``study_publish_plan``
says what the provider will create and what it costs, for the confirmation;
``publication_publish`` creates it through the provider, whose every creating
call is in the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import transaction

from apps.core import clock
from apps.core.exceptions import ApplicationError, ConflictError
from apps.recruitment.models import Provider, Publication
from apps.recruitment.providers import provider_for
from apps.recruitment.providers.base import Cost, money, places_needed
from apps.studies.models import Study

_OPEN = (Study.Status.LIVE, Study.Status.PAUSED)


@dataclass(frozen=True)
class PublishPlan:
    publications: list[Publication]
    lines: list[str]
    costs: list[Cost]
    warnings: list[str] = field(default_factory=list)

    @property
    def to_create(self) -> list[Publication]:
        return [p for p in self.publications if p.status == Publication.Status.DRAFT]


def _checked_money(value: Decimal | None, name: str) -> Decimal | None:
    if value is None:
        return None
    if value < 0:
        raise ApplicationError(f"--{name} must not be negative (got {value}).", code="bad_money")
    if value != money(value):
        raise ApplicationError(
            f"--{name} has more than two decimals (got {value}).", code="bad_money"
        )
    return value


@transaction.atomic
def publications_prepare(
    *,
    study: Study,
    provider: str,
    sandbox: bool = False,
    reward: Decimal | None = None,
    bonus: Decimal | None = None,
    places: int | None = None,
    estimated_minutes: int | None = None,
    options: dict[str, Any] | None = None,
    completion_redirect_url: str | None = None,
) -> list[Publication]:
    """The study's publications on ``provider``, one per experiment, created or updated.

    A publication already on the provider keeps what it was published with;
    a draft takes the values given here. Refused for a study that is not
    launched (its raters would find nothing to do) and for a paid provider
    without a reward.
    """
    if provider not in Provider.values:
        raise ApplicationError(
            f"Unknown provider '{provider}': use one of {', '.join(Provider.values)}.",
            code="unknown_provider",
        )
    if sandbox and provider != Provider.MTURK:
        raise ApplicationError("--sandbox exists for MTurk only.", code="sandbox_mturk_only")
    if study.status not in _OPEN:
        raise ConflictError(
            f"Study '{study.slug}' is {study.get_status_display().lower()}: launch it before "
            "publishing it (raters would find nothing to do)."
            if study.status == Study.Status.DRAFT
            else f"Study '{study.slug}' is closed and cannot be published.",
            code="study_not_open",
        )
    reward = _checked_money(reward, "reward")
    bonus = _checked_money(bonus, "bonus")
    if places is not None and places < 1:
        raise ApplicationError(f"--places must be at least 1 (got {places}).", code="bad_places")
    experiments = list(study.experiments.order_by("position", "pk"))
    out = []
    for experiment in experiments:
        publication = Publication.objects.filter(
            experiment=experiment, provider=provider, sandbox=sandbox
        ).first()
        if publication is None:
            if provider != Provider.LINK and not reward:
                raise ApplicationError(
                    f"A reward is required to publish on {Provider(provider).label} "
                    "(--reward, e.g. 1.50).",
                    code="reward_required",
                )
            title = study.name if len(experiments) == 1 else f"{study.name}: {experiment.name}"
            publication = Publication(
                study=study,
                experiment=experiment,
                provider=provider,
                sandbox=sandbox,
                title=title[:128],
                description=(study.description or _default_description(experiment))[:2000],
                places=places_needed(experiment),
            )
        if publication.status == Publication.Status.DRAFT:
            for name, value in (
                ("reward", reward),
                ("bonus", bonus),
                ("places", places),
                ("estimated_minutes", estimated_minutes),
                ("completion_redirect_url", completion_redirect_url),
            ):
                if value is not None:
                    setattr(publication, name, value)
            if options:
                publication.options = {**publication.options, **options}
            publication.full_clean()
            publication.save()
        out.append(publication)
    return out


def _default_description(experiment) -> str:
    what = (
        "compare two heat-maps that explain an image classifier and say which is more reasonable"
        if experiment.is_pairwise
        else "look at a partly hidden image and say which class it shows"
    )
    return f"A short research study: {what}. Up to {experiment.tasks_per_rater} quick questions."


def study_publish_plan(*, publications: list[Publication]) -> PublishPlan:
    """What publishing will create and cost; raises naming a missing credential or address."""
    lines: list[str] = []
    costs: list[Cost] = []
    warnings: list[str] = []
    for publication in publications:
        provider = provider_for(publication)
        head = f"{publication.experiment.slug}: {publication}"
        if publication.status != Publication.Status.DRAFT:
            lines.append(f"{head}: already {publication.status} ({publication.external_id or '-'})")
            continue
        provider.check(publication)
        lines.append(f"{head}:")
        lines += [f"  {line}" for line in provider.plan(publication)]
        cost = provider.cost(publication)
        costs.append(cost)
        lines += [f"  {line}" for line in cost.lines()]
        if publication.provider == Provider.MTURK:
            warnings.append(
                "MTurk stopped taking new customers on 2026-07-30 and AWS announced its "
                "permanent closure for 2026-09-30: only existing requester accounts can "
                "publish, and only while it still runs. Prolific or a plain link work too."
            )
    accounts = {(p.provider, p.sandbox): p for p in publications if p.status == "draft"}
    for publication in accounts.values():
        line = provider_for(publication).account_line()
        if line:
            lines.append(line)
    return PublishPlan(publications, lines, costs, sorted(set(warnings)))


def publication_publish(*, publication: Publication) -> Publication:
    """Create the provider's objects (idempotent) and mark the publication published.

    Not atomic on purpose: the provider's ledger rows commit before each call.
    """
    if publication.status == Publication.Status.CLOSED:
        raise ConflictError(f"{publication} is closed.", code="publication_closed")
    provider_for(publication).publish(publication)
    publication.refresh_from_db()
    if publication.status == Publication.Status.DRAFT:
        publication.status = Publication.Status.PUBLISHED
        publication.published_at = clock.now()
        publication.save(update_fields=["status", "published_at", "updated_at"])
    return publication


def publication_close(*, publication: Publication) -> Publication:
    """Stop recruiting on the provider; submissions stay payable."""
    if publication.status == Publication.Status.PUBLISHED:
        provider_for(publication).close(publication)
        publication.status = Publication.Status.CLOSED
        publication.closed_at = clock.now()
        publication.save(update_fields=["status", "closed_at", "updated_at"])
    return publication
