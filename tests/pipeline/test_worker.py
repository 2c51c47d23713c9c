"""A real Celery worker process, over Redis, against the test's PostgreSQL DB."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from django.db import connection

from apps.pipeline.models import ModelFamily, PipelineJob
from apps.pipeline.services import family_create, job_create

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(tmp_path):
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = {**os.environ, "DATABASE_URL": url, "PIPELINE_ROOT": str(tmp_path / "pipeline")}
    log = (tmp_path / "worker.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-Q",
            "gpu,cpu",
            "-c",
            "1",
            "--pool",
            "solo",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            "-l",
            "INFO",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    from config.celery_app import app

    app.control.purge()
    yield app
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


def test_worker_records_a_failed_job_with_a_clear_error(worker):
    # given a family whose config names an option the pipeline does not have
    # (saved behind the services' back: family_create would refuse it up front)
    family = family_create(name="bad config", slug="w2")
    ModelFamily.objects.filter(pk=family.pk).update(config={"no_such_option": 1})
    # when a job is queued, a worker picks it up
    job = job_create(family=family)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status == PipelineJob.Status.FAILED:
            break
        time.sleep(0.5)
    # then the job row says failed and names the offending option
    assert job.status == PipelineJob.Status.FAILED, job.status
    assert "no_such_option" in job.error
    assert job.started_at is not None and job.finished_at is not None
