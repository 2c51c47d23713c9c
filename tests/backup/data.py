"""A small answered study with a row in every table a backup or an archive must carry.

Built with the project's own helpers (synthetic family with tiny PNGs, the
rater services), so no model is trained.
"""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

from django.apps import apps as django_apps
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.utils import timezone

from apps.analysis.models import AnalysisRun
from apps.recruitment.models import Provider, Publication, Submission
from apps.studies.exports import response_csv_lines
from apps.studies.models import PracticeAnswer, Study
from apps.studies.services import assignment_next, response_submit
from tests.studies.helpers import join, launched_study

RESULT_FILES = {"tables/summary.csv": b"condition,score\ncpr1,0.5\n", "README.md": b"# results\n"}


def _run(participation, choice: int) -> int:
    """Answer every task and check the rater is given; returns how many answers."""
    step = assignment_next(participation_id=participation.pk)
    count = 0
    while step.assignment is not None or step.check is not None:
        target = step.assignment or step.check
        step = response_submit(
            participation_id=participation.pk,
            assignment_id=str(target.public_id),
            choice=choice,
            response_ms=900 + count,
        ).next
        count += 1
    return count


def answered_study(slug: str = "arch") -> Study:
    """Two experiments, four raters each with attention checks and probes, a practice answer,
    a publication with a submission, an owner and a collaborator, a finished analysis run."""
    study = launched_study(
        slug=slug,
        tasks_per_rater=6,
        answers_per_task=2,
        attention_checks=1,
        probe_percent=20,
        catch_percent=10,
        # Small: 6 images x 4 variants x 5 renderings = 120 stimulus files.
        family_kwargs={"class_names": ["circle", "square", "triangle"], "cprs": [1, 2, 4, 8]},
    )
    User = get_user_model()
    owner = User.objects.create_user("owner-" + slug, "owner@example.invalid", "pw-123456")
    helper = User.objects.create_user("helper-" + slug, "helper@example.invalid", "pw-123456")
    Study.objects.filter(pk=study.pk).update(created_by=owner)
    study.refresh_from_db()
    study.collaborators.add(helper)
    experiments = list(study.experiments.order_by("position", "pk"))
    first = None
    for index, experiment in enumerate(experiments):
        for n in range(4):
            participation = join(experiment)
            first = first or participation
            assert _run(participation, choice=(n + index) % 3) > 0
    PracticeAnswer.objects.create(
        participation=first, number=1, choice=1, answer_raw="B", correct=True,
        response_ms=1234, submitted_at=timezone.now(),
    )  # fmt: skip
    publication = Publication.objects.create(
        study=study, experiment=experiments[0], provider=Provider.LINK, title="Rate maps",
        description="Compare two maps.", places=10, options={"api_token": "s3cret", "note": "ok"},
    )  # fmt: skip
    Submission.objects.create(
        publication=publication, participation=first, worker_id="w1", external_id="sub-1",
        provider_status="APPROVED",
    )  # fmt: skip
    now = timezone.now()
    run = AnalysisRun.objects.create(
        study=study, key="k12-1", n_answers=12, status=AnalysisRun.Status.DONE,
        started_at=now, finished_at=now,
    )  # fmt: skip
    for name, content in RESULT_FILES.items():
        storages["results"].save(f"{study.slug}/{run.key}/{name}", ContentFile(content))
    return study


def response_csv(study: Study) -> str:
    return "".join(response_csv_lines(study=Study.objects.get(pk=study.pk)))


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def all_row_counts() -> dict[str, int]:
    """Rows of every model of every installed app (counted independently of the code under test)."""
    return {
        model._meta.label_lower: model._default_manager.count()
        for model in django_apps.get_models()
    }


def storage_checksums() -> dict[str, dict[str, str]]:
    """{alias: {name: sha256}} of every file of the three storages."""
    from apps.core.backups import storage_walk

    sums: dict[str, dict[str, str]] = {}
    for alias in ("default", "pipeline", "results"):
        storage = storages[alias]
        sums[alias] = {}
        for name in storage_walk(storage):
            with storage.open(name, "rb") as fh:
                sums[alias][name] = hashlib.sha256(fh.read()).hexdigest()
    return sums


def local_storages(settings, root: Path) -> None:
    """Point the three storages (and the roots the factories write to) under ``root``."""
    settings.MEDIA_ROOT = root / "media"
    settings.PIPELINE_ROOT = root / "pipeline"
    settings.RESULTS_ROOT = root / "results"
    fs = "django.core.files.storage.FileSystemStorage"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": fs,
            "OPTIONS": {"location": str(root / "media"), "base_url": "/media/"},
        },
        "pipeline": {"BACKEND": fs, "OPTIONS": {"location": str(root / "pipeline")}},
        "results": {"BACKEND": fs, "OPTIONS": {"location": str(root / "results")}},
    }
