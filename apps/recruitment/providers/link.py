"""A plain link: nothing is created anywhere and nobody is paid through us.

Raters get the participation's own completion code on the end page (and, if
the researcher set one, a button to ``completion_redirect_url``); paying them
is up to the researcher, with the codes in the response CSV.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from apps.recruitment.models import Publication, Submission
from apps.recruitment.providers.base import (
    Cost,
    CrowdProvider,
    ProviderError,
    RemoteSubmission,
    entry_path,
    money,
    public_url,
)


class LinkProvider(CrowdProvider):
    name = "link"

    def entry_url(self, publication: Publication) -> str:
        return public_url(entry_path(publication))

    def plan(self, publication: Publication) -> list[str]:
        lines = [f"plain link {self.entry_url(publication)} (nothing is created elsewhere)"]
        if publication.completion_redirect_url:
            lines.append(f"end page sends raters to {publication.completion_redirect_url}")
        return lines

    def cost(self, publication: Publication) -> Cost:
        rewards = money(publication.reward * publication.places)
        return Cost(
            currency="",
            places=publication.places,
            reward=publication.reward,
            rewards=rewards,
            fees=Decimal("0.00"),
            notes=("paid by you outside xai-crowd, if at all",),
        )

    def publish(self, publication: Publication) -> None:
        return None

    def remote_submissions(self, publication: Publication) -> Iterator[RemoteSubmission]:
        return iter(())

    def _nothing(self) -> None:
        raise ProviderError(
            "A plain link has no provider to approve, reject or pay through; use the "
            "completion codes in the response CSV.",
            code="link_has_no_payments",
        )

    def approve(self, submission: Submission) -> None:
        self._nothing()

    def reject(self, submission: Submission, *, reason: str) -> None:
        self._nothing()

    def pay_bonus(self, submission: Submission, *, amount: Decimal, reason: str) -> None:
        self._nothing()

    def close(self, publication: Publication) -> None:
        return None
