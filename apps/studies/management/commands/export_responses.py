"""``python manage.py export_responses <study> --out FILE``: the response CSV."""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.management import BaseCommand, CommandError

from apps.studies.exports import write_responses_csv
from apps.studies.models import Study


class Command(BaseCommand):
    help = "Export a study's answers, one row per answer (the analysis app's input format)."

    def add_arguments(self, parser):
        parser.add_argument("study", help="Study slug.")
        parser.add_argument("--out", required=True, help="CSV file to write, or - for stdout.")

    def handle(self, *args, **options):
        study = Study.objects.select_related("family").filter(slug=options["study"]).first()
        if study is None:
            known = ", ".join(Study.objects.values_list("slug", flat=True)) or "none"
            raise CommandError(f"No study '{options['study']}' (known: {known}).")
        if options["out"] == "-":
            count = write_responses_csv(study=study, out=sys.stdout)
        else:
            out = Path(options["out"])
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(out.name + ".partial")
            with tmp.open("w", encoding="utf-8", newline="") as fh:
                count = write_responses_csv(study=study, out=fh)
            tmp.replace(out)
            self.stderr.write(f"Wrote {count} answers to {out}")
