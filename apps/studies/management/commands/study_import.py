"""``manage.py study_import study.zip``: see apps.studies.archive."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.studies.archive import ArchiveError, study_import


class Command(BaseCommand):
    help = (
        "Recreate a study from an archive written by `manage.py study_export`: every row "
        "(ids and timestamps kept) and file, in one transaction. Refuses an instance that "
        "already has the study, its model family, or rows with the archive's ids. The "
        "study's owner and collaborators are matched by username (created inactive if missing)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("archive", help="the zip written by study_export")

    def handle(self, *args, **options) -> None:
        try:
            study_import(path=Path(options["archive"]), log=self.stdout.write)
        except ArchiveError as exc:
            raise CommandError(str(exc)) from exc
