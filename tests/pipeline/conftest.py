"""Pipeline tests: jobs run inline unless a test asks for the background thread,
a stub pipeline (seconds, no torch) for the admin tests, a tiny real family
(a few seconds of CPU training), and every storage on a moto S3 bucket."""

from __future__ import annotations

import runpy
import threading
import time
from pathlib import Path

import pytest

from tests.factories import write_manifest
from tests.workers.conftest import write_colour_tree

# The smallest real pipeline that still selects images and renders every map.
TINY = {
    "image_size": 32, "images_per_class": 2, "train_max_epochs": 3, "train_patience": 3,
    "target_accuracy": None, "finetune_max_epochs": 1, "deletion_steps": 2, "display_size": 48,
}  # fmt: skip

BUCKET = "xai-pipeline-test"
REGION = "us-east-1"
SETTINGS_FILE = Path(__file__).resolve().parents[2] / "config" / "settings.py"

STUB_STEPS = ["data", "train", "select", "metrics", "manifest"]


@pytest.fixture(autouse=True)
def _jobs_run_inline(settings):
    """``job_create`` runs an eager job inside the call (these tests read its result
    right after); tests of the admin's background run set it back to ``True``."""
    settings.PIPELINE_RUN_IN_THREAD = False


class StubPipeline:
    """Stands in for ``workers.pipeline``'s steps: each step reports progress, waits
    for ``gate`` when the test holds it, leaves a done-marker (a finished step is
    skipped next time, as the real markers do) and the ``manifest`` step writes a
    small manifest with real PNGs (``tests.factories.write_manifest``)."""

    def __init__(self, step_seconds: float = 0.0) -> None:
        self.step_seconds = step_seconds
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()  # set when a step starts (and waits for the gate)
        self.computed: list[str] = []

    def pipeline_steps(self, cfg) -> list[str]:
        return list(STUB_STEPS)

    def run_step(self, cfg, workdir, step, *, progress=None) -> dict:
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        marker = workdir / f"done-{step.replace(':', '_')}"
        if marker.exists():
            return {}
        self.entered.set()
        assert self.gate.wait(60), "the test never released the stub pipeline"
        for i in range(4):
            if progress:
                progress(i / 4, f"{step} {i}/4")
            time.sleep(self.step_seconds / 4)
        if step == "manifest":
            write_manifest(workdir, class_names=["circle", "square"], images_per_class=1,
                           cprs=[1, 2])  # fmt: skip
        self.computed.append(step)
        marker.write_text("done")
        return {}


@pytest.fixture
def stub_pipeline(monkeypatch) -> StubPipeline:
    import workers.pipeline as pipeline

    stub = StubPipeline()
    monkeypatch.setattr(pipeline, "pipeline_steps", stub.pipeline_steps)
    monkeypatch.setattr(pipeline, "run_step", stub.run_step)
    return stub


@pytest.fixture
def tiny_family(tmp_path):
    """A real family on a three-colour image folder, CPR 2 and 4 (``TINY`` config)."""
    from apps.pipeline.services import family_create

    root = tmp_path / "tree"
    write_colour_tree(root, per_split={"train": 24, "val": 6, "test": 6})
    return family_create(
        name="tiny", slug="tiny", dataset="folder", data_root=str(root), cprs=[2, 4], config=TINY
    )


def bucket_keys(prefix: str = "") -> set[str]:
    import boto3

    s3 = boto3.client("s3", region_name=REGION)
    keys: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        keys |= {item["Key"] for item in page.get("Contents", [])}
    return keys


@pytest.fixture
def s3_bucket(monkeypatch, settings):
    """Every storage on one moto bucket, with the ``STORAGES`` that config/settings.py
    builds for ``STORAGE_BACKEND=s3`` (prefixes media/, pipeline/, results/)."""
    from moto import mock_aws

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        import boto3

        boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
        with monkeypatch.context() as env:
            env.setenv("DEBUG", "1")
            env.setenv("STORAGE_BACKEND", "s3")
            env.setenv("AWS_STORAGE_BUCKET_NAME", BUCKET)
            env.setenv("AWS_S3_REGION_NAME", REGION)
            env.delenv("AWS_S3_ENDPOINT_URL", raising=False)
            s3_settings = runpy.run_path(str(SETTINGS_FILE), run_name="settings_s3_for_tests")
        settings.STORAGES = s3_settings["STORAGES"]
        from django.core.files.storage import default_storage, storages

        assert storages["pipeline"].bucket_name == BUCKET, "cached storages were not reset"
        assert default_storage.bucket_name == BUCKET
        yield BUCKET
