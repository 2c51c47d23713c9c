"""One study's whole life on S3 (moto): the real pipeline builds a tiny family, a study
runs on it, raters answer through the API, the researcher exports the answers, the
analysis runs and its zip is downloaded. Every file ends up in the bucket (media/,
pipeline/, results/); nothing is written to this host's MEDIA_ROOT or RESULTS_ROOT."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.files.storage import storages
from django.test import Client

from apps.analysis.models import AnalysisRun
from apps.pipeline.models import ModelVariant, PipelineJob, SourceImage, Stimulus
from apps.pipeline.services import family_create, job_create
from tests.storage.conftest import bucket_keys
from tests.storage.raters import HttpRater
from tests.storage.studies import study_on
from tests.workers.conftest import write_colour_tree

pytestmark = pytest.mark.django_db(transaction=True)

# The fast config of tests/pipeline/test_jobs.py: 32 px images, a few epochs, two classes.
TINY = {
    "image_size": 32, "images_per_class": 2, "train_max_epochs": 3, "train_patience": 3,
    "target_accuracy": None, "finetune_max_epochs": 1, "deletion_steps": 2, "display_size": 48,
}  # fmt: skip


def _local_files(root) -> list[Path]:
    root = Path(root)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_a_study_from_pipeline_to_results_zip_keeps_every_file_in_the_bucket(
    s3, settings, tmp_path, monkeypatch
):
    settings.PIPELINE_RUN_IN_THREAD = False  # the job runs inside job_create's commit
    from apps.analysis import services as analysis_services

    monkeypatch.setattr(  # the results page's background run, in this thread
        analysis_services,
        "_dispatch",
        lambda run: analysis_services.analysis_run_execute(study_id=run.study_id, run_id=run.pk),
    )
    # given a tiny family built by the real pipeline (eager Celery: both halves inline)
    tree = tmp_path / "tree"
    write_colour_tree(tree, per_split={"train": 24, "val": 6, "test": 6})
    family = family_create(
        name="tiny", slug="tiny-s3", dataset="folder", data_root=str(tree), cprs=[2, 4],
        config=TINY,
    )  # fmt: skip
    job = job_create(family=family)
    job.refresh_from_db()
    assert job.status == PipelineJob.Status.SUCCEEDED, job.error
    # and a study on it, answered by two raters per experiment through the rater API
    study = study_on(
        family, slug="s3-study", pair=("cpr1", "cpr4"), conditions=("cpr1", "cpr2"),
        answers_per_task=2,
    )  # fmt: skip
    answered = 0
    for experiment in study.experiments.all():
        for r in range(2):
            answered += len(HttpRater(experiment.code).answer_all(lambda task, r=r: r % 2))
    assert answered >= 8
    # when the researcher exports the answers, opens the results and downloads the zip
    staff = get_user_model().objects.create_superuser("res", "res@example.invalid", None)
    client = Client()
    client.force_login(staff)
    export = client.get(f"/admin/studies/study/{study.pk}/responses.csv")
    assert export.status_code == 200
    text = (b"".join(export.streaming_content) if export.streaming else export.content).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == answered
    assert client.get(f"/studies/{study.slug}/results/").status_code == 200  # starts the run
    run = AnalysisRun.objects.get(study=study)
    assert run.status == "done", run.error
    page = client.get(f"/studies/{study.slug}/results/").content.decode()
    assert f"Analysis of {answered} answers" in page
    zipped = client.get(f"/studies/{study.slug}/results.zip")
    assert zipped.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(zipped.streaming_content)))
    assert {"responses.csv", "pairwise_means.csv", "README.md"} <= set(archive.namelist())
    assert len(list(csv.DictReader(io.StringIO(archive.read("responses.csv").decode())))) == (
        answered
    )

    # then every file lives in the bucket
    keys = set(bucket_keys())
    media = {f"media/{name}" for name in Stimulus.objects.values_list("file", flat=True)}
    media |= {f"media/{name}" for name in SourceImage.objects.values_list("file", flat=True)}
    assert media and media <= keys, sorted(media - keys)[:5]
    checkpoints = [c for c in ModelVariant.objects.values_list("checkpoint", flat=True) if c]
    assert len(checkpoints) == 3  # cpr1, cpr2, cpr4
    for name in checkpoints:
        assert not Path(name).is_absolute(), f"checkpoint is a host path: {name}"
        assert f"pipeline/{name}" in keys and storages["pipeline"].exists(name)
    assert any(k.startswith(f"pipeline/{family.slug}/") and "manifest" in k for k in keys)
    prefix = f"results/{study.slug}/{run.key}/"
    assert {f"{prefix}DONE", f"{prefix}responses.csv", f"results/{study.slug}/{run.key}.zip"} <= (
        keys
    )
    # and nothing under this host's media or results folders
    assert _local_files(settings.MEDIA_ROOT) == []
    assert _local_files(settings.RESULTS_ROOT) == []
