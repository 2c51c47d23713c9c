"""One interface for every crowd: a study is published, synced, paid and closed the same way.

A provider turns a :class:`~apps.recruitment.models.Publication` into the
provider's objects (``publish``), lists the provider's records of who did the
work (``remote_submissions``), and approves, rejects, bonuses and closes. Every
call that creates, pays, rejects or blocks goes through
:func:`apps.recruitment.ledger.call_once` with a key derived from our rows, so
a retried or crashed command never does it twice.

Providers read their credentials from the environment through settings and
write nothing but their ledger rows and the publication's ``external_id``;
matching records to participations and deciding who is paid is
:mod:`apps.recruitment.services`'.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.urls import reverse

from apps.core.exceptions import ApplicationError
from apps.recruitment.ledger import Outcome, Refused, call_once
from apps.recruitment.models import ExternalCall, Publication, Submission
from apps.studies.models import Experiment, Slot

CENT = Decimal("0.01")


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


class ProviderError(ApplicationError):
    """A provider could not be used or refused a call; the message says what to fix."""

    status_code = 502


def provider_call(
    label: str,
    publication: Publication,
    kind: str,
    key: str,
    request: dict[str, Any],
    send: Callable[[ExternalCall], Outcome],
    reconcile: Callable[[ExternalCall], Outcome | None] | None = None,
) -> ExternalCall:
    """:func:`~apps.recruitment.ledger.call_once`; the provider's refusal becomes a
    :class:`ProviderError` naming the provider, the call and its key (the commands and the
    admin show it as it is)."""
    try:
        return call_once(
            publication=publication, kind=kind, key=key, request=request,
            send=send, reconcile=reconcile,
        )  # fmt: skip
    except Refused as exc:
        code = f"{exc.code}: " if exc.code else ""
        raise ProviderError(
            f"{label} refused {kind} (call {key}): {code}{exc.message}",
            code=f"{label.lower()}_refused",
        ) from exc


@dataclass(frozen=True)
class Cost:
    """What publishing costs, bonuses aside: rewards plus the provider's fees."""

    currency: str
    places: int
    reward: Decimal  # per place
    rewards: Decimal  # places x reward
    fees: Decimal
    notes: tuple[str, ...] = ()

    @property
    def total(self) -> Decimal:
        return self.rewards + self.fees

    def lines(self) -> list[str]:
        out = [
            f"cost estimate: {self.places} places x {self.reward} {self.currency} = "
            f"{self.rewards} {self.currency} in rewards + {self.fees} {self.currency} fees "
            f"= {self.total} {self.currency} (bonuses aside)"
        ]
        out += [f"  {note}" for note in self.notes]
        return out


@dataclass(frozen=True)
class RemoteSubmission:
    """The provider's record of one worker's attempt."""

    worker_id: str
    external_id: str  # MTurk assignment id / Prolific submission id
    status: str  # the provider's own word (see ``CrowdProvider.awaiting_review``)
    hit_id: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


def public_url(path: str) -> str:
    return f"{settings.PUBLIC_BASE_URL}{path}"


def entry_path(publication: Publication) -> str:
    return reverse("rater-join", kwargs={"code": publication.experiment.code})


def places_needed(experiment: Experiment) -> int:
    """Participants that fill every answer slot when each answers ``tasks_per_rater`` tasks."""
    slots = Slot.objects.filter(experiment=experiment).count()
    return max(math.ceil(slots / max(experiment.tasks_per_rater, 1)), 1)


class CrowdProvider(ABC):
    name: str
    # The provider's statuses of a submission that waits for our decision, and
    # of one already approved (by us, or automatically by the provider).
    awaiting_review: frozenset[str] = frozenset()
    approved: frozenset[str] = frozenset()

    def check(self, publication: Publication) -> None:  # noqa: B027 - optional hook
        """Raise :class:`ProviderError` naming what is missing (credentials, HTTPS address)."""

    @abstractmethod
    def entry_url(self, publication: Publication) -> str:
        """The address the crowd is sent to (with the provider's placeholders)."""

    @abstractmethod
    def plan(self, publication: Publication) -> list[str]:
        """What ``publish`` will create, one line each, for the confirmation."""

    @abstractmethod
    def cost(self, publication: Publication) -> Cost: ...

    @abstractmethod
    def publish(self, publication: Publication) -> None:
        """Create (and open) the provider's objects; a second call creates nothing new."""

    @abstractmethod
    def remote_submissions(self, publication: Publication) -> Iterator[RemoteSubmission]: ...

    @abstractmethod
    def approve(self, submission: Submission) -> None: ...

    @abstractmethod
    def reject(self, submission: Submission, *, reason: str) -> None: ...

    @abstractmethod
    def pay_bonus(self, submission: Submission, *, amount: Decimal, reason: str) -> None: ...

    @abstractmethod
    def close(self, publication: Publication) -> None:
        """Stop recruiting (expire HITs, stop the study); what was done stays payable."""

    def worker_url(self, publication: Publication) -> str | None:
        """Where workers find the published work on the provider's site, if it has one."""
        return None

    def account_line(self) -> str | None:
        """One line about the account (its balance), for the confirmation; None if nothing."""
        return None

    def reject_reason_problem(self, reason: str) -> str | None:
        """Why ``reason`` cannot be used to reject on this provider, or None."""
        return None if reason.strip() else "a rejection needs a stated reason"
