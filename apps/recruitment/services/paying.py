"""Paying a study: approve the work, reject only on failed fair checks, pay the bonuses.

Every submission waiting for review gets one decision, following the
providers' policy on attention checks (Prolific's, applied to MTurk as well):

- **reject**: the rater failed at least :func:`rejection_threshold` *attention
  checks* in the submission's experiment: 2 when the publication's
  ``estimated_minutes`` is over 5, else 1. Those are instructed-response
  items (the question itself names the option to choose), the only kind of
  check Prolific allows a rejection on. The reason is generated (how many
  checks failed, and that each question named its answer; over 100
  characters as Prolific requires); ``--reject-reason`` replaces it.
- **hold** on Prolific, with fewer failed attention checks than that (but at
  least one): "ask the participant to return the submission" (Prolific asks
  for a return, not a rejection).
- **approve**: it matches a participation that earned its completion code
  (the end page showed it) and the above does not apply. Catch trials,
  consistency probes, side bias, speed or straight-lining never reject
  anyone: such raters are paid, their data is left out of the analysis (the
  decision's reason says so).
- **hold** (left undecided, the reason shown): no participation of that
  worker, no code earned, or a second submission for a participation already
  paid (MTurk lets a worker take several HITs of one group).

Approved and completed participations get the publication's bonus. Each
approve, reject and bonus is an exactly-once ledger call (``ledger``), so a
retried ``pay`` pays nobody twice; a decision already made is not made again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from apps.core.exceptions import ApplicationError
from apps.recruitment.ledger import Refused
from apps.recruitment.models import Provider, Publication, Submission
from apps.recruitment.providers import provider_for
from apps.recruitment.providers.base import CrowdProvider
from apps.recruitment.services.locks import study_recruitment_lock
from apps.recruitment.services.syncing import SyncReport, publication_sync
from apps.studies.models import Participation, Study
from apps.studies.selectors import participation_end

APPROVE, REJECT, HOLD, BONUS_ONLY = "approve", "reject", "hold", "bonus"
RETURN_REQUEST = "ask the participant to return the submission"
# Prolific: "for studies over 5 minutes at least two failed checks".
SHORT_STUDY_MINUTES = 5


@dataclass(frozen=True)
class PayDecision:
    submission: Submission
    action: str  # approve | reject | hold | bonus (approved already, bonus due)
    reason: str  # recorded on the submission (decision_reason)
    bonus: Decimal = Decimal("0.00")
    message: str = ""  # reject: what the participant is told

    def line(self) -> str:
        s = self.submission
        text = f"{self.action:7} {s.publication.provider} {s.external_id} worker {s.worker_id}"
        if self.bonus:
            text += f" + bonus {self.bonus}"
        return f"{text}: {self.reason}" if self.reason else text


@dataclass
class PayReport:
    syncs: list[SyncReport] = field(default_factory=list)
    decisions: list[PayDecision] = field(default_factory=list)
    done: list[PayDecision] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def count(self, action: str) -> int:
        return sum(1 for d in self.decisions if d.action == action)


def _bonus_due(submission: Submission, participation: Participation | None) -> Decimal:
    publication = submission.publication
    if (
        publication.bonus > 0
        and participation is not None
        and participation.status == Participation.Status.COMPLETED
        and submission.bonus_paid == 0
    ):
        return publication.bonus
    return Decimal("0.00")


def rejection_threshold(publication: Publication) -> int:
    """Failed attention checks that allow a rejection: 2 over 5 minutes, else 1."""
    return 2 if publication.estimated_minutes > SHORT_STUDY_MINUTES else 1


def rejection_message(*, failed: int, checks: int) -> str:
    """The participant's rejection message (Prolific: at least 100 characters)."""
    plural = "s" if failed != 1 else ""
    return (
        f"Your submission failed {failed} of the {checks} attention check{'s' if checks != 1 else ''} "
        f"in this study. Each of these check{plural} was an instructed-response question: the "
        "question itself named the answer to choose, and a different answer was given. We can "
        "therefore not accept this submission, in line with the platform's policy on attention "
        "checks."
    )


@dataclass(frozen=True)
class _Quality:
    """What pay needs of a rater's quality row in one experiment."""

    attention_failed: int = 0
    n_attention: int = 0
    reasons: str = ""


def _quality_by_rater(table) -> dict[tuple[str, str], _Quality]:
    return {
        (str(r.rater_id), str(r.experiment)): _Quality(
            int(r.attention_failed), int(r.n_attention), str(r.reasons or "")
        )
        for r in table.itertuples(index=False)
    }


def _provider(providers: dict[int, CrowdProvider], publication: Publication) -> CrowdProvider:
    """One provider object (for MTurk: one boto3 client) per publication and run."""
    if publication.pk not in providers:
        providers[publication.pk] = provider_for(publication)
    return providers[publication.pk]


def _decide(
    submission: Submission,
    *,
    provider: CrowdProvider,
    quality: dict[tuple[str, str], _Quality],
    reject_reason: str,
    paid_participations: set[int],
) -> PayDecision | None:
    participation = submission.participation
    if submission.decision in (Submission.Decision.APPROVED, "") and (
        submission.decision == Submission.Decision.APPROVED
        or submission.provider_status in provider.approved
    ):
        bonus = _bonus_due(submission, participation)
        return PayDecision(submission, BONUS_ONLY, "approved already", bonus) if bonus else None
    if submission.decision or submission.provider_status not in provider.awaiting_review:
        return None
    if participation is None:
        return PayDecision(submission, HOLD, "no participation of this worker in the experiment")
    if participation.pk in paid_participations:
        return PayDecision(submission, HOLD, "another submission of this participation is paid")
    end = participation_end(participation=participation)
    if end.completion_code is None:
        return PayDecision(
            submission, HOLD, f"no completion code earned ({end.answered} answers, {end.reason})"
        )
    publication = submission.publication
    q = quality.get((str(participation.rater.public_id), participation.experiment.slug), _Quality())
    needed = rejection_threshold(publication)
    if q.attention_failed >= needed:
        message = reject_reason or rejection_message(
            failed=q.attention_failed, checks=q.n_attention
        )
        reason = f"failed {q.attention_failed} of {q.n_attention} attention checks: {message}"
        return PayDecision(submission, REJECT, reason, message=message)
    if q.attention_failed and publication.provider == Provider.PROLIFIC:
        return PayDecision(
            submission,
            HOLD,
            f"{RETURN_REQUEST} ({q.attention_failed} failed attention check(s); a rejection "
            f"needs {needed} on a study of {publication.estimated_minutes} minutes)",
        )
    paid_participations.add(participation.pk)
    reason = f"paid; data excluded by quality rules ({q.reasons})" if q.reasons else ""
    return PayDecision(submission, APPROVE, reason, _bonus_due(submission, participation))


def study_pay_decisions(
    *,
    study: Study,
    reject_reason: str = "",
    rules=None,
    providers: dict[int, CrowdProvider] | None = None,
) -> tuple[list[PayDecision], list[SyncReport]]:
    """Sync every paid publication of ``study``, then decide each submission (nothing paid)."""
    providers = {} if providers is None else providers
    from apps.analysis.services import study_rater_quality

    publications = list(
        Publication.objects.filter(study=study)
        .exclude(provider=Provider.LINK)
        .exclude(status=Publication.Status.DRAFT)
        .select_related("experiment__study")
    )
    syncs = [publication_sync(publication=p) for p in publications]
    for publication in publications:
        problem = _provider(providers, publication).reject_reason_problem(reject_reason)
        if reject_reason and problem:
            raise ApplicationError(
                f"--reject-reason cannot be used on {publication.get_provider_display()}: "
                f"{problem}.",
                code="bad_reject_reason",
            )
    quality = _quality_by_rater(study_rater_quality(study=study, rules=rules, by_experiment=True))
    submissions = Submission.objects.filter(publication__in=publications).select_related(
        "publication__experiment__study", "participation__rater", "participation__experiment"
    )
    paid = set(
        submissions.filter(decision=Submission.Decision.APPROVED)
        .exclude(participation=None)
        .values_list("participation_id", flat=True)
    )
    decisions = []
    for submission in submissions.order_by("pk"):
        decision = _decide(
            submission,
            provider=_provider(providers, submission.publication),
            quality=quality,
            reject_reason=reject_reason,
            paid_participations=paid,
        )
        if decision is not None:
            decisions.append(decision)
    return decisions, syncs


def _apply(decision: PayDecision, provider: CrowdProvider) -> None:
    submission = decision.submission
    if decision.action == APPROVE:
        provider.approve(submission)
        submission.decision = Submission.Decision.APPROVED
        submission.decision_reason = decision.reason
    elif decision.action == REJECT:
        provider.reject(submission, reason=decision.message)
        submission.decision = Submission.Decision.REJECTED
        submission.decision_reason = decision.reason
    elif decision.action == BONUS_ONLY:
        submission.decision = Submission.Decision.APPROVED
    submission.save(update_fields=["decision", "decision_reason", "updated_at"])
    if decision.bonus:
        provider.pay_bonus(
            submission, amount=decision.bonus, reason="Thank you for completing every task."
        )
        submission.bonus_paid = decision.bonus
        submission.save(update_fields=["bonus_paid", "updated_at"])


def study_pay(
    *, study: Study, dry_run: bool = False, reject_reason: str = "", rules=None
) -> PayReport:
    """Sync, decide and (unless ``dry_run``) carry out every decision; see the module docstring.

    One failing call is reported and the rest go on; the failed one stays in
    the ledger and the next run retries or reconciles it.
    """
    with study_recruitment_lock(study):
        providers: dict[int, CrowdProvider] = {}
        decisions, syncs = study_pay_decisions(
            study=study, reject_reason=reject_reason, rules=rules, providers=providers
        )
        report = PayReport(syncs=syncs, decisions=decisions)
        if dry_run:
            return report
        for decision in decisions:
            if decision.action == HOLD:
                # Left undecided (at the provider too), with the reason shown in the
                # admin; the next run decides again (e.g. once the study is closed).
                submission = decision.submission
                submission.decision_reason = decision.reason
                submission.save(update_fields=["decision_reason", "updated_at"])
                continue
            try:
                _apply(decision, _provider(providers, decision.submission.publication))
            except (Refused, ApplicationError) as exc:
                report.errors.append(f"{decision.line()}: {getattr(exc, 'message', exc)}")
                continue
            report.done.append(decision)
        return report
