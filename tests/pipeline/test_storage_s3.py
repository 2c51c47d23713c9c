"""Pipeline jobs with every file in one S3 bucket (moto), as with ``STORAGE_BACKEND=s3``:
the work folder is a local copy the job pulls and pushes, so the gpu half and the
cpu half may run on different hosts that share nothing but the bucket and the
database; the import is idempotent and a crash mid-import leaves only orphans."""

from __future__ import annotations

import hashlib
import re
import shutil

import pytest
from django.core.files.storage import storages

from apps.pipeline.models import ModelVariant, PipelineJob, SourceImage, Stimulus
from apps.pipeline.services import (
    job_create,
    job_finish,
    job_retry,
    job_run_model_steps,
    workspace_push,
)
from tests.pipeline.conftest import bucket_keys

pytestmark = pytest.mark.django_db(transaction=True)

OPAQUE = re.compile(r"(img|mask|s)/[0-9a-f]{2}/[0-9a-f]{32}\.png")


def _rows() -> dict[str, set]:
    return {
        "variants": set(ModelVariant.objects.values_list("label", "checkpoint")),
        "images": set(SourceImage.objects.values_list("key", "file", "mask_file")),
        "stimuli": set(
            Stimulus.objects.values_list(
                "image__key", "variant__label", "kind", "method", "catch", "file"
            )
        ),  # fmt: skip
    }


def _referenced_media() -> set[str]:
    names = set(Stimulus.objects.values_list("file", flat=True))
    for file, mask in SourceImage.objects.values_list("file", "mask_file"):
        names |= {file, mask} - {""}
    return {f"media/{name}" for name in names}


def test_the_two_halves_run_on_hosts_that_share_only_the_bucket(
    s3_bucket, tiny_family, settings, tmp_path
):
    host_a, host_b = tmp_path / "host-a", tmp_path / "host-b"
    job = PipelineJob.objects.create(family=tiny_family, attempts=1)
    # given the gpu half ran on host A
    settings.PIPELINE_ROOT = host_a
    job_run_model_steps(job_id=job.pk, attempt=1)
    assert PipelineJob.objects.get(pk=job.pk).status == PipelineJob.Status.RUNNING
    stored = bucket_keys("pipeline/tiny/")
    for name in ("steps/train.json", "steps/select.json", "variants/cpr4.pt", "config.json"):
        assert f"pipeline/tiny/{name}" in stored, name
    assert "pipeline/tiny/steps/metrics.json" not in stored  # the cpu half has not run
    # and host A is gone, with its disk
    shutil.rmtree(host_a)
    # when the cpu half runs on host B
    settings.PIPELINE_ROOT = host_b
    job_finish(job_id=job.pk, attempt=1)
    # then it pulled the gpu host's markers and maps from the bucket and imported them
    job.refresh_from_db()
    assert job.status == PipelineJob.Status.SUCCEEDED, job.error
    assert (host_b / "tiny" / "steps" / "select.json").is_file()
    assert not host_a.exists()
    stored = bucket_keys("pipeline/tiny/")
    assert {"pipeline/tiny/manifest.json", "pipeline/tiny/steps/manifest.json"} <= stored
    # stimuli and images live in the bucket under media/, under opaque names only
    media = bucket_keys("media/")
    assert Stimulus.objects.count() > 0 and SourceImage.objects.count() > 0
    assert _referenced_media() <= media
    for key in media:
        assert OPAQUE.fullmatch(key.removeprefix("media/")), key
    # each variant's checkpoint is a pipeline storage name of an object in the bucket
    pipeline_storage = storages["pipeline"]
    for variant in ModelVariant.objects.all():
        assert variant.checkpoint == f"tiny/variants/{variant.label}.pt"
        assert f"pipeline/{variant.checkpoint}" in stored
        with pipeline_storage.open(variant.checkpoint, "rb") as fh:
            assert hashlib.sha256(fh.read()).hexdigest() == variant.checkpoint_sha256


def test_a_crash_mid_import_and_a_redelivered_job_leave_one_set_of_rows(
    s3_bucket, tiny_family, settings, tmp_path, monkeypatch
):
    import apps.pipeline.services.imports as imports

    # given an import that dies after copying four files into media storage
    copied: list[str] = []
    real_copy = imports.copy_into_storage

    def dying_copy(*, source, name):
        if len(copied) == 4:
            raise RuntimeError("worker killed mid-import")
        copied.append(real_copy(source=source, name=name))
        return copied[-1]

    monkeypatch.setattr(imports, "copy_into_storage", dying_copy)
    with pytest.raises(RuntimeError, match="mid-import"):
        job_create(family=tiny_family)
    failed = PipelineJob.objects.get()
    assert failed.status == PipelineJob.Status.FAILED
    # then the import's rows were rolled back; its four files are orphans in the bucket
    assert not ModelVariant.objects.exists() and not SourceImage.objects.exists()
    orphans = bucket_keys("media/")
    assert orphans == {f"media/{name}" for name in copied}
    # when the job is retried (every step is done: only the import runs again)
    monkeypatch.setattr(imports, "copy_into_storage", real_copy)
    job = job_retry(job=failed)
    job.refresh_from_db()
    assert job.status == PipelineJob.Status.SUCCEEDED, job.error
    rows = _rows()
    media = bucket_keys("media/")
    assert media - _referenced_media() == orphans  # no row references an orphan
    assert _referenced_media() <= media
    # when the cpu half is delivered again on a fresh host (the worker died after
    # the import committed, before the job was marked succeeded)
    from apps.pipeline.tasks import finish_job

    settings.PIPELINE_ROOT = tmp_path / "host-c"
    PipelineJob.objects.filter(pk=job.pk).update(
        status=PipelineJob.Status.RUNNING, finished_at=None
    )
    assert finish_job.delay(job.pk, job.attempts).get() == PipelineJob.Status.SUCCEEDED
    # then the rows are the same set and no file was copied again
    assert _rows() == rows
    assert bucket_keys("media/") == media


def test_a_step_s_files_reach_storage_before_its_done_marker(s3_bucket, tiny_family, settings):
    from apps.pipeline.services import family_workdir

    # given a work folder where step "select" just finished (files, then marker)
    workdir = family_workdir(tiny_family)
    (workdir / "steps").mkdir(parents=True)
    (workdir / "images").mkdir()
    (workdir / "images" / "a.png").write_bytes(b"png")
    (workdir / "steps" / "select.json").write_text("{}")
    (workdir / "variants").mkdir()
    (workdir / "variants" / "cpr1.pt").write_bytes(b"weights")
    saved: list[str] = []
    pipeline_storage = storages["pipeline"]
    real_save = pipeline_storage.save

    def spying_save(name, content, **kw):
        saved.append(name)
        return real_save(name, content, **kw)

    pipeline_storage.save = spying_save
    try:
        # when it is pushed
        report = workspace_push(family=tiny_family)
        # then the marker is uploaded last; a second push has nothing to do
        assert saved[-1] == "tiny/steps/select.json"
        assert set(saved) == {"tiny/images/a.png", "tiny/steps/select.json",
                              "tiny/variants/cpr1.pt"}  # fmt: skip
        assert set(report.transferred) == {"images/a.png", "steps/select.json",
                                           "variants/cpr1.pt"}  # fmt: skip
        saved.clear()
        assert workspace_push(family=tiny_family).transferred == ()
        assert saved == []
        # and a redone step (marker removed locally) loses its stored marker at once
        (workdir / "steps" / "select.json").unlink()
        (workdir / "images" / "a.png").write_bytes(b"png, redone")
        report = workspace_push(family=tiny_family)
        assert report.deleted == ("steps/select.json",)
        assert saved == ["tiny/images/a.png"]
        assert "pipeline/tiny/steps/select.json" not in bucket_keys()
    finally:
        del pipeline_storage.save
