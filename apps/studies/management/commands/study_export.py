"""``manage.py study_export SLUG --out study.zip [--with-checkpoints]``: see apps.studies.archive."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.studies.archive import ArchiveError, study_export
from apps.studies.models import Study


class Command(BaseCommand):
    help = (
        "Write a study's full archive (one zip, streamed to disk): the design, the model "
        "family rows and stimulus files it needs, raters, participations, answers, "
        "publications (no provider secrets), the response CSV and the latest analysis results. "
        "`manage.py study_import` recreates it in an instance without that study."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("study", help="the study's slug")
        parser.add_argument("--out", required=True, help="the zip file to write")
        parser.add_argument(
            "--with-checkpoints",
            action="store_true",
            help="also archive the variants' model checkpoints (pipeline storage; large)",
        )

    def handle(self, *args, **options) -> None:
        study = Study.objects.select_related("family").filter(slug=options["study"]).first()
        if study is None:
            known = ", ".join(Study.objects.order_by("slug").values_list("slug", flat=True))
            raise CommandError(f"No study '{options['study']}' (known: {known or 'none'}).")
        try:
            study_export(
                study=study,
                out=Path(options["out"]),
                with_checkpoints=options["with_checkpoints"],
                log=self.stdout.write,
            )
        except ArchiveError as exc:
            raise CommandError(str(exc)) from exc
