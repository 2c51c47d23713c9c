"""Analysis results through the ``results`` storage: computed in a temporary folder,
stored under ``<slug>/<key>/``, read back and zipped as streams (S3 via moto, and local)."""

from __future__ import annotations

import io
import os
import tracemalloc
import zipfile
from pathlib import Path

import boto3
import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from apps.analysis import results_store
from apps.analysis.models import AnalysisRun
from apps.analysis.services import analysis_run_execute, study_results_request
from tests.factories import CLASS_NAMES, family_with_stimuli
from tests.storage.conftest import BUCKET, REGION, bucket_keys
from tests.storage.studies import study_on
from tests.studies.helpers import answer, join, next_task

pytestmark = pytest.mark.django_db

MB = 1024 * 1024


def _answered_study(slug: str = "res"):
    family = family_with_stimuli(
        slug=f"fam-{slug}", images_per_class=1, class_names=CLASS_NAMES[:3], cprs=[1, 2, 4]
    )
    study = study_on(
        family, slug=slug, pair=("cpr1", "cpr4"), conditions=("cpr1", "cpr2"), answers_per_task=2
    )
    for experiment in study.experiments.all():
        for r in range(2):
            rater = join(experiment)
            while (assignment := next_task(rater)) is not None:
                answer(rater, assignment, r % 2, response_ms=1500)
    return study


def _analyse(study) -> AnalysisRun:
    state = study_results_request(study=study)
    run = analysis_run_execute(study_id=study.pk, run_id=state.run.pk)
    assert run.status == "done", run.error
    return run


def _staff_client() -> Client:
    user = get_user_model().objects.create_superuser("r", "r@example.invalid", None)
    client = Client()
    client.force_login(user)
    return client


def _local_files(root) -> list[Path]:
    return [p for p in Path(root).rglob("*") if p.is_file()] if Path(root).exists() else []


def test_results_are_stored_in_the_bucket_and_streamed_back(s3, settings, monkeypatch):
    # given an answered study, analysed by the task body
    study = _answered_study()
    run = _analyse(study)
    # then every output is an object under results/<slug>/<key>/, the marker included
    prefix = f"results/{study.slug}/{run.key}/"
    keys = [k for k in bucket_keys() if k.startswith(prefix)]
    names = {k.removeprefix(prefix) for k in keys}
    assert {"DONE", "responses.csv", "pairwise_means.csv", "README.md"} <= names
    assert any(n.endswith(".png") for n in names)
    assert _local_files(settings.RESULTS_ROOT) == []  # nothing on this host's disk
    s3_client = boto3.client("s3", region_name=REGION)

    def body(key: str) -> bytes:
        return s3_client.get_object(Bucket=BUCKET, Key=key)["Body"].read()

    # when the researcher opens the page, a file and the zip
    client = _staff_client()
    page = client.get(f"/studies/{study.slug}/results/")
    assert page.status_code == 200
    assert "pairwise_means.csv" in page.content.decode() and "condition_a" in page.content.decode()
    table = client.get(f"/studies/{study.slug}/results/pairwise_means.csv?download=1")
    assert table.streaming and b"".join(table.streaming_content) == body(
        prefix + "pairwise_means.csv"
    )
    assert int(table["Content-Length"]) == len(body(prefix + "pairwise_means.csv"))
    zipped = client.get(f"/studies/{study.slug}/results.zip")
    data = b"".join(zipped.streaming_content)
    # then the archive holds every file (byte for byte) and is stored once next to the folder
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert set(archive.namelist()) == names - {"DONE"}
    assert archive.read("pairwise_means.csv") == body(prefix + "pairwise_means.csv")
    assert body(f"results/{study.slug}/{run.key}.zip") == data

    def never(**kwargs):
        raise AssertionError("the stored archive was built again")

    monkeypatch.setattr(results_store, "write_zip_from_storage", never)
    again = client.get(f"/studies/{study.slug}/results.zip")
    assert b"".join(again.streaming_content) == data
    assert _local_files(settings.RESULTS_ROOT) == []


def test_a_new_state_replaces_the_older_folder_and_its_zip(s3):
    study = _answered_study("newer")
    first = _analyse(study)
    client = _staff_client()
    assert client.get(f"/studies/{study.slug}/results.zip").status_code == 200
    rater = join(study.experiments.get(slug="fc"))
    answer(rater, next_task(rater), 0, response_ms=1500)
    second = _analyse(study)
    keys = bucket_keys()
    assert not [k for k in keys if k.startswith(f"results/{study.slug}/{first.key}")]
    assert f"results/{study.slug}/{second.key}/DONE" in keys


def test_a_folder_without_its_marker_is_not_shown_and_the_run_restarts(
    s3, monkeypatch, django_capture_on_commit_callbacks
):
    # given a finished run whose stored marker is gone (an upload cut short)
    study = _answered_study("cut")
    run = _analyse(study)
    results_store.results_storage().delete(f"{study.slug}/{run.key}/DONE")
    started = []
    monkeypatch.setattr("apps.analysis.services._dispatch", lambda r: started.append(r.pk))
    # when the page asks, there are no results and the run is started again
    with django_capture_on_commit_callbacks(execute=True):
        state = study_results_request(study=study)
    assert state.results is None and state.run.status == "running" and started == [run.pk]


def _big_result_set(prefix: str, size: int) -> list[str]:
    """A stored result folder with one ``size``-byte file of random data, written in pieces."""
    storage = results_store.results_storage()
    root = Path(storage.path(prefix))
    root.mkdir(parents=True)
    with (root / "big.bin").open("wb") as fh:
        for _ in range(size // MB):
            fh.write(os.urandom(MB))
    (root / "table.csv").write_text("a,b\n1,2\n")
    (root / results_store.DONE).write_text("ok\n")
    return ["big.bin", "table.csv"]


def test_zipping_and_serving_a_large_result_keeps_memory_flat(settings):
    # given a local result folder with a 30 MB file
    size = 30 * MB
    names = _big_result_set("big-study/10-20", size)
    # when the archive is built and stored, then streamed out as the download does
    tracemalloc.start()
    try:
        name = results_store.ensure_zip(prefix="big-study/10-20", names=names)
        stream = results_store.open_stream(name)
        served = 0
        for piece in iter(lambda: stream.read(64 * 1024), b""):
            served += len(piece)
        stream.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # then Python never held more than a small fraction of the file
    assert served > size  # random data does not compress: the archive is all of it
    assert peak < 10 * MB, f"peak Python allocation {peak / MB:.1f} MB"
    with zipfile.ZipFile(Path(settings.RESULTS_ROOT) / name) as archive:
        assert archive.getinfo("big.bin").file_size == size
        assert archive.testzip() is None
