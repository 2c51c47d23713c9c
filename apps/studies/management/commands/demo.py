"""``python manage.py demo``: build the demo study end to end and serve it.

Migrates, creates the admin login, runs the pipeline on the generated dataset
(train -> prune to CPR 2..32 -> Grad-CAM heat- and occlusion-maps), builds and
launches the demo study, prints the rater links, then serves on
127.0.0.1:8000 unless ``--no-serve``. Safe to run again: nothing is duplicated.
"""

from __future__ import annotations

import os
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import BaseCommand, CommandError, call_command

from apps.core.exceptions import ApplicationError
from apps.pipeline.models import PipelineJob
from apps.pipeline.steplog import step_log_to
from apps.studies.admin import rater_link
from apps.studies.demo import demo_family, demo_run_pipeline, demo_study

ADMIN_USERNAME = "admin"


class Command(BaseCommand):
    help = "Build the demo study (generated data, demo CNN) and serve it."

    def add_arguments(self, parser):
        parser.add_argument("--no-serve", action="store_true", help="Build and exit.")
        parser.add_argument("--addrport", default="127.0.0.1:8000")
        parser.add_argument("--images-per-class", type=int, default=3)
        parser.add_argument("--answers-per-task", type=int, default=3)

    def handle(self, *args, **options):
        started = time.perf_counter()
        say = self.stdout.write
        call_command("migrate", interactive=False, verbosity=0)
        password = self._admin_login()

        say("Running the pipeline (train, prune to CPR 2..32, Grad-CAM maps)...")
        family = demo_family()
        with step_log_to(self.stdout):
            job = demo_run_pipeline(family=family, report=say)
        if job.status != PipelineJob.Status.SUCCEEDED:
            raise CommandError(
                f"The pipeline job {job.pk} failed; see its error in the admin.\n{job.error[:2000]}"
            )
        try:
            study = demo_study(
                family=family,
                images_per_class=options["images_per_class"],
                answers_per_task=options["answers_per_task"],
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from None

        elapsed = time.perf_counter() - started
        say(self.style.SUCCESS(f"\nDemo study '{study.slug}' is live (built in {elapsed:.0f} s)."))
        say("Rater links (one per experiment):")
        for experiment in study.experiments.order_by("position"):
            say(f"  {experiment.name}\n    {rater_link(experiment)}")
        base = settings.PUBLIC_BASE_URL
        say(f"Admin: {base}/admin/  login: {ADMIN_USERNAME} / {password}")
        say(f"Responses CSV: python manage.py export_responses {study.slug} --out responses.csv")
        if not options["no_serve"]:
            say(f"Serving at http://{options['addrport']}/ (Ctrl-C to stop)")
            call_command("runserver", options["addrport"], use_reloader=False)

    def _admin_login(self) -> str:
        password = os.environ.get("DEMO_ADMIN_PASSWORD", "xai-crowd-demo")
        user_model = get_user_model()
        user = user_model.objects.filter(username=ADMIN_USERNAME).first()
        if user is None:
            user_model.objects.create_superuser(ADMIN_USERNAME, "admin@example.invalid", password)
        elif not user.check_password(password):
            return "(the password you set earlier)"
        return password
