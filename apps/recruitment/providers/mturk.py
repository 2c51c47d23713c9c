"""Amazon Mechanical Turk: one HIT type, HITs of a few assignments each, an ExternalQuestion.

MTurk shows our join page (HTTPS only) in a frame and appends the worker's,
assignment's and HIT's ids. A publication becomes one HIT type (ledger key
``<root>-type``) and ``ceil(places / max_assignments_per_hit)`` HITs
(``<root>-hitN``): HITs of 10 or more assignments cost another 20 %.

Every creating or paying call goes through the ledger (``call_once``) and
carries the row's key as MTurk's ``UniqueRequestToken``: botocore retries
timeouts and 5xx by itself, and MTurk answers a replayed token with
``HitAlreadyExists`` (a success for us) instead of making a second HIT. A row
left pending by a crash is reconciled from MTurk's own records (the HIT by
its ``RequesterAnnotation``, the bonus in ``list_bonus_payments``, the
assignment's status) before anything is sent again; tokens expire after 24 h,
so the reconciliation is what protects a late rerun.

MTurk stopped taking new customers in 2026 and AWS announced its closure:
the provider serves existing requester accounts while MTurk runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import QuerySet

from apps.recruitment.ledger import Outcome, Refused
from apps.recruitment.models import ExternalCall, Publication, Submission
from apps.recruitment.providers.base import (
    Cost,
    CrowdProvider,
    ProviderError,
    RemoteSubmission,
    entry_path,
    money,
    provider_call,
    public_url,
)
from apps.recruitment.providers.mturk_api import MTurkApi
from apps.recruitment.providers.mturk_spec import HitSpec, fees, hit_spec

HIT_EXISTS = "AWS.MechanicalTurk.HitAlreadyExists"
WORKER_SITES = {False: "https://worker.mturk.com", True: "https://workersandbox.mturk.com"}
EXPIRED = datetime(2015, 1, 1, tzinfo=UTC)  # an ExpireAt in the past closes a HIT at once
_HIT_ID = re.compile(r"(?<![0-9A-Za-z])[0-9A-Z]{20,40}(?![0-9A-Za-z])")


def _hit_outcome(hit: dict[str, Any]) -> Outcome:
    keep = ("HITId", "HITGroupId", "HITTypeId", "MaxAssignments")
    return Outcome(hit["HITId"], {k: hit.get(k) for k in keep})


class MTurkProvider(CrowdProvider):
    name = "mturk"
    awaiting_review = frozenset({"Submitted"})
    approved = frozenset({"Approved"})

    def __init__(self, *, sandbox: bool) -> None:
        self.sandbox = sandbox
        self.api = MTurkApi(sandbox=sandbox)

    @property
    def client(self) -> Any:
        """boto3's client, built lazily; set it to a stubbed client in a test."""
        return self.api.client

    @client.setter
    def client(self, value: Any) -> None:
        self.api.client = value

    def _once(
        self,
        publication: Publication,
        kind: str,
        key: str,
        request: dict[str, Any],
        send: Callable[[ExternalCall], Outcome],
        reconcile: Callable[[ExternalCall], Outcome | None] | None = None,
    ) -> ExternalCall:
        """``call_once``; MTurk's no, or a key made with other parameters, is an error.

        A call MTurk refused made nothing: it may be retried with new parameters
        (the row then shows those). Any other row may stand for something MTurk
        made with the old ones, so the publication must be put back as it was.
        """
        earlier = ExternalCall.objects.filter(key=key).values_list("request", "state").first()
        if earlier is not None and earlier[0] != request:
            if earlier[1] != ExternalCall.State.FAILED:
                raise ProviderError(
                    f"The ledger's {kind} call {key} was made with other parameters "
                    f"({earlier[0]}) than now ({request}): put the publication back as it was.",
                    code="mturk_call_changed",
                )
            ExternalCall.objects.filter(key=key).update(request=request)
        return provider_call("MTurk", publication, kind, key, request, send, reconcile)

    # --- what publishing will do -----------------------------------------------------

    def _spec(self, publication: Publication) -> HitSpec:
        if not settings.PUBLIC_BASE_URL.startswith("https://"):
            raise ProviderError(
                "PUBLIC_BASE_URL must start with https:// for MTurk (an ExternalQuestion's "
                f"URL must be HTTPS); it is {settings.PUBLIC_BASE_URL!r}.",
                code="https_required",
            )
        return hit_spec(publication, sandbox=self.sandbox)

    def check(self, publication: Publication) -> None:
        self._spec(publication)

    def entry_url(self, publication: Publication) -> str:
        return public_url(entry_path(publication))

    def plan(self, publication: Publication) -> list[str]:
        spec = self._spec(publication)
        where = "MTurk sandbox (no money moves)" if self.sandbox else "MTurk production"
        return [
            f"{where} at {self.api.endpoint}",
            f"HIT type {spec.title!r}: reward USD {spec.reward}, "
            f"{spec.assignment_seconds // 60} min per assignment, auto-approved after "
            f"{spec.auto_approval_seconds // 86400} days; qualifications: "
            f"{'; '.join(spec.qualification_words) or 'none'}",
            f"{spec.sizes_words()}, open {spec.lifetime_seconds // 3600} h",
            f"ExternalQuestion {self.entry_url(publication)} (frame height {spec.frame_height})",
        ]

    def cost(self, publication: Publication) -> Cost:
        spec = self._spec(publication)
        total, large = fees(publication.reward, spec.sizes)
        notes = ["MTurk fee: 20 % of each reward, at least 0.01 USD per assignment"]
        if large:
            notes.append(f"+ 20 % on the {large} assignments in HITs of 10 or more assignments")
        notes.append("bonuses carry MTurk's 20 % fee too (not included)")
        if self.sandbox:
            notes.append("sandbox: nothing is paid")
        return Cost(
            currency="USD",
            places=publication.places,
            reward=money(publication.reward),
            rewards=money(publication.reward * publication.places),
            fees=total,
            notes=tuple(notes),
        )

    def balance(self) -> Decimal:
        """The account's available balance (USD); also the usual credentials check."""
        return Decimal(self.api.call("get_account_balance")["AvailableBalance"])

    def worker_url(self, publication: Publication) -> str | None:
        """The HIT group on MTurk's worker site (the sandbox's for a sandbox publication)."""
        result = (
            ExternalCall.objects.filter(
                publication=publication, kind="create_hit", state=ExternalCall.State.DONE
            )
            .values_list("result", flat=True)
            .first()
        )
        group = (result or {}).get("HITGroupId")
        return f"{WORKER_SITES[self.sandbox]}/projects/{group}/tasks" if group else None

    def account_line(self) -> str | None:
        where = "sandbox" if self.sandbox else "production"
        try:
            return f"MTurk {where} account balance: {self.balance()} USD"
        except ProviderError as exc:
            return f"MTurk {where} account balance could not be read: {exc.message}"

    # --- publish and close -----------------------------------------------------------

    def publish(self, publication: Publication) -> None:
        spec = self._spec(publication)
        root = publication.key_root
        type_request = {
            "Title": spec.title,
            "Description": spec.description,
            "Reward": spec.reward,
            "AssignmentDurationInSeconds": spec.assignment_seconds,
            "AutoApprovalDelayInSeconds": spec.auto_approval_seconds,
            "Keywords": spec.keywords,
            "QualificationRequirements": spec.qualifications,
        }

        def send_type(row: ExternalCall) -> Outcome:
            # MTurk gives the same HIT type for identical parameters: a resend is harmless.
            type_id = self.api.call("create_hit_type", **type_request)["HITTypeId"]
            return Outcome(type_id, {"HITTypeId": type_id})

        type_id = self._once(
            publication, "create_hit_type", f"{root}-type", type_request, send_type
        ).external_id
        if publication.external_id != type_id:
            publication.external_id = type_id
            publication.save(update_fields=["external_id", "updated_at"])
        question = spec.question(self.entry_url(publication))
        for n, size in enumerate(spec.sizes, start=1):
            key = f"{root}-hit{n}"
            request = {
                "HITTypeId": type_id,
                "LifetimeInSeconds": spec.lifetime_seconds,
                "MaxAssignments": size,
                "Question": question,
                "RequesterAnnotation": key,
                "UniqueRequestToken": key,
            }
            self._once(
                publication, "create_hit", key, request,
                send=self._create_hit,
                reconcile=lambda row: self._found_hit(row.key),
            )  # fmt: skip

    def _create_hit(self, row: ExternalCall) -> Outcome:
        """Send the HIT the ledger row records; a replayed token means an earlier try made it."""
        request = row.request
        try:
            return _hit_outcome(self.api.call("create_hit_with_hit_type", **request)["HIT"])
        except Refused as exc:
            if exc.code != HIT_EXISTS:
                raise
            named = _HIT_ID.search(exc.message)
            if named:
                try:
                    return _hit_outcome(self.api.call("get_hit", HITId=named.group())["HIT"])
                except Refused:
                    pass
            found = self._found_hit(request["RequesterAnnotation"])
            if found is None:
                raise ProviderError(
                    f"MTurk says the HIT {request['RequesterAnnotation']} exists but does not "
                    f"list it yet ({exc.message}); run the command again later.",
                    code="mturk_hit_unlisted",
                ) from exc
            return found

    def _found_hit(self, key: str) -> Outcome | None:
        hit = self.api.hit_by_annotation(key)
        return None if hit is None else _hit_outcome(hit)

    def _hit_calls(self, publication: Publication) -> QuerySet[ExternalCall]:
        return publication.calls.filter(kind="create_hit", state=ExternalCall.State.DONE)

    def close(self, publication: Publication) -> None:
        for call in self._hit_calls(publication).order_by("pk"):
            hit_id = call.external_id
            request = {"HITId": hit_id, "ExpireAt": EXPIRED.isoformat()}

            def send(row: ExternalCall, hit_id: str = hit_id) -> Outcome:
                try:
                    self.api.call("update_expiration_for_hit", HITId=hit_id, ExpireAt=EXPIRED)
                except Refused as exc:  # a replay of the same expiry: it was done before
                    if "already been processed" not in exc.message:
                        raise
                return Outcome(hit_id, {"ExpireAt": EXPIRED.isoformat()})

            n = call.key.rsplit("-hit", 1)[1]
            self._once(publication, "expire_hit", f"{publication.key_root}-exp{n}", request, send)

    # --- review and pay --------------------------------------------------------------

    def remote_submissions(self, publication: Publication) -> Iterator[RemoteSubmission]:
        statuses = ["Submitted", "Approved", "Rejected"]
        for call in self._hit_calls(publication).order_by("pk"):
            for a in self.api.pages(
                "list_assignments_for_hit", "Assignments",
                HITId=call.external_id, AssignmentStatuses=statuses,
            ):  # fmt: skip
                yield RemoteSubmission(
                    worker_id=a["WorkerId"],
                    external_id=a["AssignmentId"],
                    status=a["AssignmentStatus"],
                    hit_id=a.get("HITId") or call.external_id,
                    raw={k: a[k] for k in ("AssignmentId", "WorkerId", "HITId") if k in a},
                )

    def _decide(
        self, submission: Submission, kind: str, key: str, status: str, **extra: str
    ) -> None:
        """Approve or reject; an assignment already in ``status`` at MTurk counts as done."""
        op = {"Approved": "approve_assignment", "Rejected": "reject_assignment"}[status]
        aid = submission.external_id
        request = {"AssignmentId": aid, **extra}
        done = Outcome(aid, {"AssignmentStatus": status})

        def send(row: ExternalCall) -> Outcome:
            try:
                self.api.call(op, **request)
            except Refused:  # e.g. "already approved": fine if MTurk shows it so
                if self.api.assignment_status(aid) != status:
                    raise
            return done

        self._once(
            submission.publication, kind, key, request, send,
            reconcile=lambda row: done if self.api.assignment_status(aid) == status else None,
        )  # fmt: skip

    def approve(self, submission: Submission) -> None:
        key = f"{submission.publication.key_root}-ok{submission.pk}"
        self._decide(submission, "approve", key, "Approved")

    def reject(self, submission: Submission, *, reason: str) -> None:
        problem = self.reject_reason_problem(reason)
        if problem:
            raise ProviderError(f"Cannot reject on MTurk: {problem}.", code="bad_reject_reason")
        key = f"{submission.publication.key_root}-no{submission.pk}"
        self._decide(submission, "reject", key, "Rejected", RequesterFeedback=reason)

    def reject_reason_problem(self, reason: str) -> str | None:
        if not reason.strip():
            return "a rejection needs a stated reason (the worker sees it)"
        if len(reason) > 1024:
            return f"MTurk takes at most 1024 characters of feedback (got {len(reason)})"
        return None

    def pay_bonus(self, submission: Submission, *, amount: Decimal, reason: str) -> None:
        key = f"{submission.publication.key_root}-bonus{submission.pk}"
        request = {
            "WorkerId": submission.worker_id,
            "BonusAmount": f"{money(amount):.2f}",
            "AssignmentId": submission.external_id,
            "Reason": reason,
            "UniqueRequestToken": key,
        }
        done = Outcome(submission.external_id, {"BonusAmount": request["BonusAmount"]})

        def paid() -> bool:
            return self.api.bonus_paid(
                assignment_id=submission.external_id,
                worker_id=submission.worker_id,
                amount=request["BonusAmount"],
            )

        def send(row: ExternalCall) -> Outcome:
            try:
                self.api.call("send_bonus", **request)
            except Refused:  # e.g. the token was seen: fine if the payment is there
                if not paid():
                    raise
            return done

        self._once(
            submission.publication, "bonus", key, request, send,
            reconcile=lambda row: done if paid() else None,
        )  # fmt: skip

    def block_worker(self, publication: Publication, worker_id: str, reason: str) -> None:
        """Keep a worker out of every HIT of the account (MTurk's block)."""
        request = {"WorkerId": worker_id, "Reason": reason}

        def send(row: ExternalCall) -> Outcome:
            self.api.call("create_worker_block", **request)
            return Outcome(worker_id, {"blocked": True})

        key = f"{publication.key_root}-blk-{worker_id}"[:64]
        self._once(publication, "block_worker", key, request, send)
