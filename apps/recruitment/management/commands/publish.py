"""``python manage.py publish <study> --provider link|prolific|mturk``: offer a study to a crowd.

Prints what it will create on the provider and a cost estimate, asks for a
confirmation (unless ``--yes``), then publishes every experiment of the study.
Running it again creates nothing new: every creating call is in the ledger.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation

from django.core.management import BaseCommand, CommandError
from django.db import transaction

from apps.core.exceptions import ApplicationError
from apps.recruitment.models import Provider
from apps.recruitment.providers import provider_for
from apps.recruitment.services import (
    publication_publish,
    publications_prepare,
    study_publish_plan,
)
from apps.recruitment.services.locks import study_recruitment_lock

from ._common import confirmed, study_from_ref


def _decimal(value: str) -> Decimal:
    try:
        return Decimal(value)
    except InvalidOperation:
        raise CommandError(f"Not an amount: {value!r} (e.g. 1.50).") from None


def _option(text: str) -> tuple[str, object]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise CommandError(f"--option takes key=value, got {text!r}.")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


class Command(BaseCommand):
    help = "Publish a launched study on a plain link, Prolific or Amazon Mechanical Turk."

    def add_arguments(self, parser):
        parser.add_argument("study", help="Study slug or id.")
        parser.add_argument("--provider", required=True, choices=Provider.values)
        parser.add_argument("--sandbox", action="store_true", help="MTurk's sandbox.")
        parser.add_argument("--dry-run", action="store_true", help="Print the plan only.")
        parser.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")
        parser.add_argument("--reward", type=_decimal, help="Per participant, e.g. 1.50.")
        parser.add_argument("--bonus", type=_decimal, help="Per completed participant.")
        parser.add_argument("--places", type=int, help="Participants (default: fills every slot).")
        parser.add_argument("--minutes", type=int, help="Estimated minutes per participant.")
        parser.add_argument(
            "--redirect-url", help="Plain link: where the end page sends raters (optional)."
        )
        parser.add_argument(
            "--option",
            action="append",
            default=[],
            type=_option,
            metavar="KEY=VALUE",
            help='Provider option, e.g. locales=["US","GB"] masters=true lifetime_hours=48.',
        )

    def handle(self, *args, **o):
        study = study_from_ref(o["study"])
        values = {
            "study": study,
            "provider": o["provider"],
            "sandbox": o["sandbox"],
            "reward": o["reward"],
            "bonus": o["bonus"],
            "places": o["places"],
            "estimated_minutes": o["minutes"],
            "options": dict(o["option"]) or None,
            "completion_redirect_url": o["redirect_url"],
        }
        try:
            with study_recruitment_lock(study):
                if o["dry_run"]:
                    with transaction.atomic():  # the plan of drafts that are never kept
                        plan = study_publish_plan(publications=publications_prepare(**values))
                        self._print(plan)
                        transaction.set_rollback(True)
                    self.stdout.write("Dry run: nothing was created.")
                    return
                publications = publications_prepare(**values)
                plan = study_publish_plan(publications=publications)
                self._print(plan)
                if not plan.to_create:
                    self.stdout.write("Nothing new to publish.")
                    return
                if not confirmed(self, "Publish?", yes=o["yes"]):
                    self.stdout.write("Not published (the drafts are kept; nothing was sent).")
                    return
                for publication in plan.to_create:
                    publication = publication_publish(publication=publication)
                    provider = provider_for(publication)
                    where = provider.worker_url(publication) or provider.entry_url(publication)
                    made = f" ({publication.external_id})" if publication.external_id else ""
                    self.stdout.write(f"published {publication}{made}: {where}")
        except ApplicationError as exc:
            raise CommandError(exc.message) from None

    def _print(self, plan) -> None:
        for line in plan.lines:
            self.stdout.write(line)
        if len(plan.costs) > 1:
            by_currency: dict[str, Decimal] = {}
            for cost in plan.costs:
                by_currency[cost.currency] = by_currency.get(cost.currency, Decimal(0)) + cost.total
            total = ", ".join(f"{v} {k}".strip() for k, v in by_currency.items())
            self.stdout.write(f"total estimate: {total} (bonuses aside)")
        for warning in plan.warnings:
            self.stdout.write(self.style.WARNING(f"note: {warning}"))
