"""Prolific's state-changing calls, each exactly once through the ledger.

Each function sends one kind of call through
:func:`~apps.recruitment.ledger.call_once` with a ``reconcile`` that asks
Prolific's own records whether an earlier attempt with an unknown outcome
(timeout, dropped connection, crash before our commit) already took effect.
A transition Prolific has already made (a study already stopped, a
submission approved in its app) counts as done, not as a refusal. A real
refusal comes back as a :class:`~.base.ProviderError` naming the call.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from apps.recruitment.ledger import Outcome, Refused
from apps.recruitment.models import ExternalCall, Publication, Submission
from apps.recruitment.providers.base import ProviderError, money, provider_call
from apps.recruitment.providers.prolific_client import NotSent, ProlificClient


def cents(amount: Decimal) -> int:
    """An amount in the account's currency, in its smallest unit (what Prolific's fields take)."""
    return int((amount * 100).to_integral_value(rounding=ROUND_HALF_UP))


def summary(answer: Any) -> dict[str, Any]:
    """What the ledger keeps of an answer: the ids and amounts, not the whole object."""
    if not isinstance(answer, dict):
        return {"answer": str(answer)[:500]}
    keep = ("id", "status", "internal_name", "study", "amount", "fees", "total_amount", "vat")
    return {k: answer[k] for k in keep if k in answer}


def answer_id(answer: Any, what: str) -> str:
    if isinstance(answer, dict) and answer.get("id"):
        return str(answer["id"])
    raise ProviderError(f"Prolific {what} answered without an id: {str(answer)[:200]!r}.")


def remember(row: ExternalCall, request: dict[str, Any]) -> None:
    """Keep in the ledger what this attempt sends (a failed call is re-sent as it is now)."""
    if row.request != request:
        row.request = request
        row.save(update_fields=["request", "updated_at"])


# call_once, with Prolific's refusal as a ProviderError naming the call.
once = functools.partial(provider_call, "Prolific")


def study_transition(
    client: ProlificClient,
    publication: Publication,
    *,
    kind: str,
    key: str,
    action: str,
    done: Callable[[str], bool],
) -> None:
    """``POST /studies/{id}/transition/``; a study whose status ``done`` accepts is left alone."""
    study_id = publication.external_id

    def status() -> str:
        return str(client.get(f"/studies/{study_id}/").get("status", ""))

    def send(row: ExternalCall) -> Outcome:
        try:
            study = client.post(f"/studies/{study_id}/transition/", {"action": action})
        except Refused:
            now = status()
            if done(now):
                return Outcome(study_id, {"status": now, "already": True})
            raise
        return Outcome(study_id, summary(study))

    def reconcile(row: ExternalCall) -> Outcome | None:
        now = status()
        return Outcome(study_id, {"status": now, "reconciled": True}) if done(now) else None

    once(publication, kind, key, {"study_id": study_id, "action": action}, send, reconcile)


def submission_transition(
    client: ProlificClient,
    submission: Submission,
    *,
    kind: str,
    key: str,
    body: dict[str, Any],
    target: str,
) -> None:
    """``POST /submissions/{id}/transition/`` until the submission's status is ``target``.

    Prolific ignores a repeated transition; one already made elsewhere (its
    app, an earlier run) is done.
    """
    submission_id = submission.external_id

    def status() -> str:
        return str(client.get(f"/submissions/{submission_id}/").get("status", ""))

    def send(row: ExternalCall) -> Outcome:
        try:
            answer = client.post(f"/submissions/{submission_id}/transition/", body)
        except Refused:
            if status() == target:
                return Outcome(submission_id, {"status": target, "already": True})
            raise
        return Outcome(submission_id, summary(answer))

    def reconcile(row: ExternalCall) -> Outcome | None:
        found = status() == target
        return Outcome(submission_id, {"status": target, "reconciled": True}) if found else None

    request = {"submission_id": submission_id, **body}
    once(submission.publication, kind, key, request, send, reconcile)


def bonus_pay(client: ProlificClient, submission: Submission, amount: Decimal) -> None:
    """Set up a bonus for the submission's participant, then pay it.

    Setting up (``POST /submissions/bonus-payments/``) only makes an unpaid
    bonus object: making a second one after a lost answer costs nothing, so
    it is simply sent again (no reconcile). Paying
    (``POST /bulk-bonus-payments/{id}/pay/``) moves money, is asynchronous
    and, per Prolific's documentation, *not* idempotent: a repeated pay pays
    twice. It has its own ledger key; when an earlier attempt's outcome is
    unknown it counts as paid if the submission shows a bonus of this
    amount, and otherwise it is not sent again: the error says what to check.
    Only an attempt known not to have reached Prolific (connection refused,
    429) is sent again. A refusal saying the bonus was already paid counts
    as done.
    """
    publication = submission.publication
    amount = money(amount)
    if amount <= 0:
        raise ProviderError(f"A bonus must be above 0 (got {amount}).", code="bad_bonus")
    root, pk, submission_id = publication.key_root, submission.pk, submission.external_id
    body = {
        "study_id": publication.external_id,
        "csv_bonuses": f"{submission.worker_id},{amount}",
    }

    def create(row: ExternalCall) -> Outcome:
        answer = client.post("/submissions/bonus-payments/", body)
        return Outcome(answer_id(answer, "bonus set-up"), summary(answer))

    bonus_id = once(publication, "bonus_create", f"{root}-bon{pk}", body, create).external_id
    key = f"{root}-pay{pk}"

    def pay(row: ExternalCall) -> Outcome:
        if row.result:
            row.result = {}
            row.save(update_fields=["result", "updated_at"])
        try:
            answer = client.post(f"/bulk-bonus-payments/{bonus_id}/pay/")
        except NotSent:
            row.result = {"not_sent": True}  # known not paid: the next run may send it again
            row.save(update_fields=["result", "updated_at"])
            raise
        except Refused as exc:
            text = exc.message.lower()
            if "already" in text and "paid" in text:
                return Outcome(bonus_id, {"already_paid": exc.message[:500]})
            raise
        return Outcome(bonus_id, summary(answer))

    def reconcile(row: ExternalCall) -> Outcome | None:
        if row.result.get("not_sent"):
            return None
        paid = client.get(f"/submissions/{submission_id}/").get("bonus_payments") or []
        if any(round(float(p)) == cents(amount) for p in paid):
            return Outcome(bonus_id, {"reconciled": True, "bonus_payments": paid})
        raise ProviderError(
            f"The bonus of {amount} for submission {submission_id} (Prolific bonus {bonus_id}, "
            f"call {key}) may have been paid already: the last attempt got no answer and "
            "Prolific pays bonuses asynchronously, so it is not sent again. Run pay later: "
            "once Prolific shows the bonus on the submission it counts as paid. If it never "
            "appears, pay it in Prolific's app (the next pay run then finds it).",
            code="prolific_bonus_unknown",
        )

    once(publication, "bonus_pay", key, {"bulk_bonus_id": bonus_id, **body}, pay, reconcile)
