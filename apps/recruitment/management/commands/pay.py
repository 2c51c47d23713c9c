"""``python manage.py pay <study> [--dry-run]``: approve, reject on failed attention checks,
pay bonuses.

Syncs first, prints every decision, asks for a confirmation (unless
``--yes``), then carries them out, each exactly once (see
:mod:`apps.recruitment.services.paying`).
"""

from __future__ import annotations

from django.core.management import BaseCommand, CommandError

from apps.core.exceptions import ApplicationError
from apps.recruitment.services import study_pay
from apps.recruitment.services.paying import APPROVE, BONUS_ONLY, HOLD, REJECT

from ._common import confirmed, study_from_ref


class Command(BaseCommand):
    help = (
        "Approve every completed submission, reject only on failed attention checks (the "
        "provider's policy), pay bonuses."
    )

    def add_arguments(self, parser):
        parser.add_argument("study", help="Study slug or id.")
        parser.add_argument("--dry-run", action="store_true", help="Print the decisions only.")
        parser.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")
        parser.add_argument(
            "--reject-reason",
            default="",
            help="Replace the generated rejection message for raters who failed enough "
            "attention checks (Prolific: at least 100 characters). Nobody is rejected for "
            "any other reason.",
        )

    def handle(self, *args, **o):
        study = study_from_ref(o["study"])
        reason = o["reject_reason"].strip()
        try:
            report = study_pay(study=study, dry_run=True, reject_reason=reason)
            self._summary(report)
            actionable = [d for d in report.decisions if d.action != HOLD]
            if o["dry_run"] or not actionable:
                self.stdout.write(
                    "Dry run: nothing was sent." if o["dry_run"] else "Nothing to do."
                )
                return
            if not confirmed(self, "Carry these out?", yes=o["yes"]):
                self.stdout.write("Nothing was sent.")
                return
            report = study_pay(study=study, reject_reason=reason)
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        for decision in report.done:
            self.stdout.write(f"done: {decision.line()}")
        for error in report.errors:
            self.stdout.write(self.style.ERROR(f"failed: {error}"))
        if report.errors:
            raise CommandError(
                f"{len(report.errors)} calls failed (listed above); run pay again to retry them."
            )

    def _summary(self, report) -> None:
        for sync in report.syncs:
            self.stdout.write(sync.line())
        for decision in report.decisions:
            self.stdout.write(decision.line())
        self.stdout.write(
            f"{report.count(APPROVE)} to approve, {report.count(REJECT)} to reject, "
            f"{report.count(BONUS_ONLY)} bonuses for approved ones, {report.count(HOLD)} held"
        )
