"""``python manage.py sync_provider <study>``: bring the providers' submissions home."""

from __future__ import annotations

from django.core.management import BaseCommand, CommandError

from apps.core.exceptions import ApplicationError
from apps.recruitment.models import Provider, Publication
from apps.recruitment.services import publication_sync
from apps.recruitment.services.locks import study_recruitment_lock

from ._common import study_from_ref


class Command(BaseCommand):
    help = "List every published experiment's submissions at its provider and match them."

    def add_arguments(self, parser):
        parser.add_argument("study", help="Study slug or id.")

    def handle(self, *args, **o):
        study = study_from_ref(o["study"])
        publications = (
            Publication.objects.filter(study=study, status__in=["published", "closed"])
            .exclude(provider=Provider.LINK)
            .select_related("experiment")
        )
        if not publications:
            self.stdout.write(f"Study '{study.slug}' is published on no crowd provider.")
            return
        try:
            with study_recruitment_lock(study):
                for publication in publications:
                    self.stdout.write(publication_sync(publication=publication).line())
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
