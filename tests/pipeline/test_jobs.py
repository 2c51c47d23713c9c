"""Pipeline jobs through the Django side: the gpu half, the cpu half, the
job row's status/progress/timings, the import into stimuli, and resuming a
job whose worker died mid-way (a finished step is never redone)."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from apps.pipeline.models import ModelVariant, PipelineJob, SourceImage, Stimulus
from apps.pipeline.services import job_create, job_finish, job_run_model_steps
from tests.pipeline.conftest import TINY

pytestmark = pytest.mark.django_db(transaction=True)


def test_job_runs_both_halves_and_imports_the_stimuli(tiny_family):
    # when a job is queued (eager Celery: the gpu task, then the cpu task, run inline)
    job = job_create(family=tiny_family)
    job.refresh_from_db()
    # then it succeeded with every step timed, and the rows exist
    assert job.status == PipelineJob.Status.SUCCEEDED and job.progress == 1.0
    assert {"data", "train", "prune:2", "prune:4", "select", "metrics", "manifest"} <= set(
        job.timings
    )
    labels = list(ModelVariant.objects.order_by("cpr_target").values_list("label", flat=True))
    assert labels == ["cpr1", "cpr2", "cpr4"]
    n_images = SourceImage.objects.count()
    assert n_images > 0
    real = Stimulus.objects.filter(catch="")
    assert real.count() == n_images * 3 * 2  # 3 variants x heat/occlusion
    # and the catch stimuli: rot180 heat and occlusion, light occlusion, per image x variant
    catch = Counter(Stimulus.objects.exclude(catch="").values_list("kind", "catch"))
    assert catch == {
        ("heat", "rot180"): n_images * 3,
        ("occlusion", "rot180"): n_images * 3,
        ("occlusion", "light"): n_images * 3,
    }
    stimulus = real.select_related("variant").first()
    assert stimulus.provenance["checkpoint_sha256"] == stimulus.variant.checkpoint_sha256
    # every file, real or catch, under the same opaque scheme: nothing names the catch
    for name in Stimulus.objects.values_list("file", flat=True):
        assert re.fullmatch(r"s/[0-9a-f]{2}/[0-9a-f]{32}\.png", name), name
    assert not Stimulus.objects.exclude(catch="").exclude(metrics={}).exists()


def _snapshot(workdir) -> dict[str, int]:
    """Every file with its modification time: a redone step rewrites files."""
    return {str(p): p.stat().st_mtime_ns for p in workdir.rglob("*") if p.is_file()}


def test_a_job_killed_mid_way_resumes_without_redoing_finished_steps(tiny_family, monkeypatch):
    import workers.pipeline as pipeline

    # given a job whose worker died during the cpu half (status left "running")
    job = PipelineJob.objects.create(family=tiny_family)
    job_run_model_steps(job_id=job.pk)
    assert PipelineJob.objects.get(pk=job.pk).status == PipelineJob.Status.RUNNING
    # when the task is redelivered, then only the unfinished steps do work
    computed: list[str] = []
    original = pipeline.run_step

    def spying_run_step(cfg, workdir, step, *, progress=None):
        before = _snapshot(workdir)
        summary = original(cfg, workdir, step, progress=progress)
        if _snapshot(workdir) != before:
            computed.append(step)
        return summary

    monkeypatch.setattr(pipeline, "run_step", spying_run_step)
    job_run_model_steps(job_id=job.pk)
    assert computed == []  # every model step was already done
    job_finish(job_id=job.pk)
    assert computed == ["metrics", "manifest"]
    assert PipelineJob.objects.get(pk=job.pk).status == PipelineJob.Status.SUCCEEDED


def test_a_failing_job_records_the_error_and_a_new_job_can_follow(tiny_family):
    tiny_family.config = {**TINY, "no_such_option": 1}
    tiny_family.save()
    with pytest.raises(ValueError, match="no_such_option"):
        job_create(family=tiny_family)
    job = PipelineJob.objects.get()
    assert job.status == PipelineJob.Status.FAILED and "no_such_option" in job.error
    # a failed job does not block the next one (only one live job per family)
    tiny_family.config = TINY
    tiny_family.save()
    assert job_create(family=tiny_family).pk != job.pk
