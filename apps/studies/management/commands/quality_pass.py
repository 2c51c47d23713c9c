"""Judge the raters of a study now (what Celery beat does every few minutes)."""

from django.core.management.base import BaseCommand, CommandError

from apps.studies.models import Study
from apps.studies.services.quality import live_studies_quality_pass, study_quality_pass


class Command(BaseCommand):
    help = (
        "Compute per-rater quality (attention, catch, consistency, time, side bias) for a "
        "study, or every live study, exclude the raters the rules exclude and reopen their "
        "slots when the experiment says so."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("study", nargs="?", help="Study slug (default: every live study).")

    def handle(self, *args, **options) -> None:
        slug = options["study"]
        if slug:
            study = Study.objects.filter(slug=slug).first()
            if study is None:
                known = ", ".join(Study.objects.values_list("slug", flat=True)) or "none"
                raise CommandError(f"No study '{slug}'. Known: {known}.")
            passes = {slug: study_quality_pass(study=study)}
        else:
            passes = live_studies_quality_pass()
        for name, outcome in passes.items():
            self.stdout.write(
                f"{name}: {outcome.raters} rater(s) judged, {len(outcome.excluded)} newly "
                f"excluded, {outcome.reopened} slot(s) reopened."
            )
