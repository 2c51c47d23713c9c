"""``python manage.py unpublish <study>``: stop recruiting (expire the HITs, stop the Prolific study).

What was done stays payable: run ``pay`` afterwards as usual.
"""

from __future__ import annotations

from django.core.management import BaseCommand, CommandError

from apps.core.exceptions import ApplicationError
from apps.recruitment.models import Publication
from apps.recruitment.services import publication_close
from apps.recruitment.services.locks import study_recruitment_lock

from ._common import confirmed, study_from_ref


class Command(BaseCommand):
    help = "Stop recruiting for a study on every provider it is published on."

    def add_arguments(self, parser):
        parser.add_argument("study", help="Study slug or id.")
        parser.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")

    def handle(self, *args, **o):
        study = study_from_ref(o["study"])
        publications = list(
            Publication.objects.filter(study=study, status=Publication.Status.PUBLISHED)
        )
        if not publications:
            self.stdout.write(f"Study '{study.slug}' is not published anywhere.")
            return
        for publication in publications:
            self.stdout.write(f"will close {publication}")
        if not confirmed(self, "Stop recruiting?", yes=o["yes"]):
            return
        try:
            with study_recruitment_lock(study):
                for publication in publications:
                    publication_close(publication=publication)
                    self.stdout.write(f"closed {publication}")
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
