"""Prolific: one draft study per publication, published at once, reviewed and paid through ``pay``.

- The study is found again by its ``internal_name``, which is the create
  call's ledger key: a crash after Prolific created it, before we stored its
  id, is reconciled from Prolific's list instead of creating a second study.
- Participants arrive with ``PROLIFIC_PID``, ``STUDY_ID`` and ``SESSION_ID``
  (the submission id) in the URL; the end page redirects them to Prolific
  with the study's completion code, or with a second code when no task was
  left for them. Both codes ask for manual review: ``pay`` approves or
  rejects each submission itself, after the quality rules have run.
- Participants of the studies in ``Study.exclude_raters_of`` that ran on
  Prolific are kept out by Prolific's previous-studies blocklist filter as
  well as at join.

The HTTP client is :mod:`.prolific_client`; every call that creates,
publishes, approves, rejects, pays or stops goes through the ledger in
:mod:`.prolific_calls`.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from django.conf import settings

from apps.recruitment.ledger import Outcome, Refused
from apps.recruitment.models import ExternalCall, Provider, Publication, Submission
from apps.recruitment.providers import prolific_calls as calls
from apps.recruitment.providers.base import (
    Cost,
    CrowdProvider,
    ProviderError,
    RemoteSubmission,
    entry_path,
    money,
    public_url,
)
from apps.recruitment.providers.prolific_client import ProlificClient

URL_PARAMETERS = (
    "?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"
)
MIN_REJECT_MESSAGE = 100  # Prolific refuses a rejection message shorter than this
DEFAULT_REJECTION_CATEGORY = "OTHER"
BLOCKLIST_FILTER = "previous_studies"  # the "exclude participants from other studies" screener
_STOPPED = frozenset({"AWAITING REVIEW", "COMPLETED", "UNPUBLISHED"})  # recruits nobody


class ProlificProvider(CrowdProvider):
    name = "prolific"
    awaiting_review = frozenset({"AWAITING REVIEW"})
    approved = frozenset({"APPROVED"})

    def _client(self) -> ProlificClient:
        return ProlificClient(
            base_url=settings.PROLIFIC_API_URL,
            token=settings.PROLIFIC_API_TOKEN,
            timeout=settings.PROVIDER_TIMEOUT_SECONDS,
        )

    def check(self, publication: Publication) -> None:
        if not settings.PROLIFIC_API_TOKEN:
            raise ProviderError(
                "PROLIFIC_API_TOKEN is not set: create an API token in Prolific (Settings, "
                "API token) and put it in the environment.",
                code="prolific_no_token",
            )
        if not settings.PUBLIC_BASE_URL.startswith("https://"):
            raise ProviderError(
                f"PUBLIC_BASE_URL is {settings.PUBLIC_BASE_URL!r}: Prolific participants need "
                "an https:// address of this site.",
                code="public_url_not_https",
            )
        if publication.reward <= 0:
            raise ProviderError(
                "A Prolific study needs a reward above 0 (--reward).", code="reward_required"
            )
        if publication.completion_code == publication.no_tasks_code:
            raise ProviderError(
                "The completion code and the no-task code must differ.", code="codes_equal"
            )

    def entry_url(self, publication: Publication) -> str:
        # Literal braces: Prolific fills the placeholders in when a participant starts.
        return public_url(entry_path(publication)) + URL_PARAMETERS

    def _currency(self, publication: Publication) -> str:
        return str(publication.options.get("currency", "GBP"))

    def blocked_studies(self, publication: Publication) -> list[str]:
        """Prolific ids of the earlier studies whose participants this one excludes."""
        earlier = publication.study.exclude_raters_of.all()
        ids = Publication.objects.filter(study__in=earlier, provider=Provider.PROLIFIC)
        return sorted(set(ids.exclude(external_id="").values_list("external_id", flat=True)))

    def draft(self, publication: Publication) -> dict[str, Any]:
        """The body of ``POST /studies/``."""
        extra = publication.options.get("filters", [])
        if not isinstance(extra, list):
            raise ProviderError(
                "Option 'filters' must be a list of Prolific filter objects.", code="bad_option"
            )
        blocked = self.blocked_studies(publication)
        filters = [{"filter_id": BLOCKLIST_FILTER, "selected_values": blocked}] if blocked else []
        review = [{"action": "MANUALLY_REVIEW"}]
        return {
            "name": publication.title,
            "internal_name": f"{publication.key_root}-study",
            "description": publication.description,
            "external_study_url": self.entry_url(publication),
            "prolific_id_option": "url_parameters",
            "completion_codes": [
                {"code": publication.completion_code, "code_type": "COMPLETED", "actions": review},
                {"code": publication.no_tasks_code, "code_type": "OTHER", "actions": review},
                {"code": publication.no_consent_code, "code_type": "NO_CONSENT", "actions": review},
            ],
            "total_available_places": publication.places,
            "estimated_completion_time": publication.estimated_minutes,
            "reward": calls.cents(publication.reward),
            "device_compatibility": publication.options.get("device_compatibility", ["desktop"]),
            "filters": filters + extra,
        }

    def plan(self, publication: Publication) -> list[str]:
        currency = self._currency(publication)
        body = self.draft(publication)
        lines = [
            f"Prolific draft study '{publication.title}' (internal name {body['internal_name']}): "
            f"{publication.places} places, reward {publication.reward} {currency} "
            f"({body['reward']} in the smallest unit), about {publication.estimated_minutes} "
            f"minutes, devices {', '.join(body['device_compatibility'])}",
            f"study URL {body['external_study_url']}",
            f"completion code {publication.completion_code} (COMPLETED, manual review: `pay` "
            f"approves it); code {publication.no_tasks_code} for a participant who found no "
            f"task left (manual review); code {publication.no_consent_code} for one who "
            "declined consent (NO_CONSENT, manual review: ask them to return it)",
        ]
        blocked = self.blocked_studies(publication)
        if blocked:
            lines.append(f"blocklist: participants of Prolific studies {', '.join(blocked)}")
        extra = len(body["filters"]) - (1 if blocked else 0)
        if extra:
            lines.append(f"{extra} more filter(s) from the options")
        lines.append("published at once (transition PUBLISH)")
        return lines

    def cost(self, publication: Publication) -> Cost:
        rewards = money(publication.reward * publication.places)
        fee_percent = Decimal(settings.PROLIFIC_FEE_PERCENT)
        return Cost(
            currency=self._currency(publication),
            places=publication.places,
            reward=publication.reward,
            rewards=rewards,
            fees=money(rewards * fee_percent / 100),
            notes=(
                f"Prolific's fee taken as {fee_percent} % (PROLIFIC_FEE_PERCENT); the rate "
                "depends on your account, VAT may apply, and bonuses carry the fee too",
            ),
        )

    def publish(self, publication: Publication) -> None:
        self.check(publication)
        client = self._client()
        body = self.draft(publication)
        key = body["internal_name"]

        def create(row: ExternalCall) -> Outcome:
            calls.remember(row, body)
            study = client.post("/studies/", body)
            return Outcome(calls.answer_id(study, "POST /studies/"), calls.summary(study))

        def find(row: ExternalCall) -> Outcome | None:
            for study in client.pages("/studies/"):
                if study.get("internal_name") == key:
                    return Outcome(str(study["id"]), calls.summary(study))
            return None

        row = calls.once(publication, "create_study", key, body, create, find)
        if publication.external_id != row.external_id:
            publication.external_id = row.external_id
            publication.save(update_fields=["external_id", "updated_at"])
        calls.study_transition(
            client, publication, kind="publish_study", key=f"{publication.key_root}-pub",
            action="PUBLISH", done=lambda status: status not in ("", "UNPUBLISHED"),
        )  # fmt: skip

    def close(self, publication: Publication) -> None:
        if publication.external_id:
            calls.study_transition(
                self._client(), publication, kind="stop_study",
                key=f"{publication.key_root}-stop", action="STOP",
                done=lambda status: status in _STOPPED,
            )  # fmt: skip

    def remote_submissions(self, publication: Publication) -> Iterator[RemoteSubmission]:
        try:
            for item in self._client().pages(f"/studies/{publication.external_id}/submissions/"):
                yield RemoteSubmission(
                    worker_id=str(item.get("participant_id") or item.get("participant") or ""),
                    external_id=str(item["id"]),
                    status=str(item.get("status", "")),
                    raw=item,
                )
        except Refused as exc:
            raise ProviderError(exc.message, code="prolific_refused") from None

    def reject_reason_problem(self, reason: str) -> str | None:
        problem = super().reject_reason_problem(reason)
        length = len(reason.strip())
        if problem is None and length < MIN_REJECT_MESSAGE:
            problem = (
                f"Prolific requires a rejection message of at least {MIN_REJECT_MESSAGE} "
                f"characters (this one has {length}); say what the participant did wrong"
            )
        return problem

    def approve(self, submission: Submission) -> None:
        calls.submission_transition(
            self._client(), submission, kind="approve",
            key=f"{submission.publication.key_root}-ok{submission.pk}",
            body={"action": "APPROVE"}, target="APPROVED",
        )  # fmt: skip

    def reject(self, submission: Submission, *, reason: str) -> None:
        problem = self.reject_reason_problem(reason)
        if problem:
            raise ProviderError(f"Cannot reject on Prolific: {problem}.", code="bad_reject_reason")
        category = submission.publication.options.get(
            "rejection_category", DEFAULT_REJECTION_CATEGORY
        )
        calls.submission_transition(
            self._client(), submission, kind="reject",
            key=f"{submission.publication.key_root}-no{submission.pk}",
            body={"action": "REJECT", "message": reason.strip(), "rejection_category": category},
            target="REJECTED",
        )  # fmt: skip

    def pay_bonus(self, submission: Submission, *, amount: Decimal, reason: str) -> None:
        """Bonus the participant (Prolific's bonus carries no message, so ``reason`` is unused);
        see :func:`.prolific_calls.bonus_pay` for why paying is keyed and setting up is not."""
        calls.bonus_pay(self._client(), submission, amount)
