"""Prometheus metrics: who may read /metrics, and what our own figures count."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from apps.core import clock, metrics
from apps.core.logs import task_id_var
from apps.studies.models import Slot
from config.celery_app import app as celery_app
from tests.conftest import _redis_reachable
from tests.studies.helpers import launched_study
from tests.studies.test_api import Rater_, _code

PUBLIC = "203.0.113.7"
TOKEN = "metrics-token-5b1d"
LOCAL_REDIS = "redis://127.0.0.1:6379/15"


def _scrape(client: Client | None = None, **headers) -> dict[tuple[str, tuple], float]:
    response = (client or Client()).get("/metrics", REMOTE_ADDR="127.0.0.1", **headers)
    assert response.status_code == 200
    return _samples(response.content.decode())


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


# -- who may read it --------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("address", [PUBLIC, "8.8.8.8", "2001:db8::1", "::ffff:8.8.8.8", "x"])
def test_metrics_are_a_404_from_a_public_address_without_a_token(address):
    assert Client().get("/metrics", REMOTE_ADDR=address).status_code == 404


@pytest.mark.django_db
def test_metrics_through_a_proxy_are_a_404_even_from_loopback():
    # nginx on the same host forwards the internet from 127.0.0.1, adding X-Forwarded-For.
    response = Client().get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=PUBLIC)
    assert response.status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize(
    "address", ["127.0.0.1", "10.0.3.4", "172.20.0.5", "192.168.1.20", "::1", "::ffff:10.1.2.3"]
)
def test_metrics_are_served_to_a_local_or_private_scraper_without_a_token(address):
    response = Client().get("/metrics", REMOTE_ADDR=address)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert "django_http_requests" in response.content.decode()


@pytest.mark.django_db
def test_with_a_token_only_the_token_opens_metrics(settings):
    settings.METRICS_TOKEN = TOKEN
    client = Client()
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 404
    wrong = client.get("/metrics", REMOTE_ADDR=PUBLIC, HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 404
    right = client.get("/metrics", REMOTE_ADDR=PUBLIC, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert right.status_code == 200
    text = right.content.decode()
    assert "django_http_requests" in text
    assert "xai_leases" in text
    assert "xai_celery_task_duration_seconds" in text
    assert "no-cache" in right["Cache-Control"] and not right.cookies


# -- what it counts ---------------------------------------------------------------------


@pytest.mark.django_db
def test_an_answer_through_the_rater_api_counts_once(django_capture_on_commit_callbacks):
    study = launched_study(tasks_per_rater=3)
    rater = Rater_(_code(study))
    key = ("xai_answers_stored_total", (("kind", "pairwise"),))
    before = _scrape().get(key, 0.0)
    task = rater.next().json()["task"]
    with django_capture_on_commit_callbacks(execute=True):
        assert rater.answer(task["assignment_id"], 0).status_code == 201
    assert _scrape()[key] == before + 1
    with django_capture_on_commit_callbacks(execute=True):
        assert rater.answer(task["assignment_id"], 0).status_code == 200  # a retry
    assert _scrape()[key] == before + 1


@pytest.mark.django_db
def test_lease_gauges_count_slots_on_screen_and_expired_not_freed():
    study = launched_study(tasks_per_rater=3)
    first, second = Rater_(_code(study)), Rater_(_code(study))
    first.next()
    second.next()
    samples = _scrape()
    assert samples[("xai_leases", (("state", "on_screen"),))] == 2
    assert samples[("xai_leases", (("state", "expired"),))] == 0
    leased = Slot.objects.filter(holder__isnull=False, is_answered=False)
    Slot.objects.filter(pk=leased.first().pk).update(
        lease_expires_at=clock.now() - timedelta(seconds=5)
    )
    samples = _scrape()
    assert samples[("xai_leases", (("state", "on_screen"),))] == 1
    assert samples[("xai_leases", (("state", "expired"),))] == 1


@pytest.mark.django_db
def test_no_queue_depth_with_in_process_celery(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the laptop: no broker (CI sets one)
    settings.CELERY_BROKER_URL = "memory://"
    text = Client().get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    assert "xai_celery_queue_depth" not in text


class _FakePipeline:
    def __init__(self, lists: dict[str, int], asked: list[str]) -> None:
        self.lists, self.asked = lists, asked

    def llen(self, key: str) -> None:
        self.asked.append(key)

    def execute(self) -> list[int]:
        return [self.lists.get(key, 0) for key in self.asked]


class _FakeRedis:
    def __init__(self, lists: dict[str, int]) -> None:
        self.lists, self.asked = lists, []

    def pipeline(self, transaction: bool = True) -> _FakePipeline:
        return _FakePipeline(self.lists, self.asked)

    def close(self) -> None:
        pass


@pytest.mark.django_db
def test_queue_depth_sums_each_queue_and_its_priority_lists(settings, monkeypatch):
    import redis

    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = "redis://broker.invalid:6379/0"
    fake = _FakeRedis({"gpu": 4, "gpu\x06\x163": 1, "cpu": 2})
    monkeypatch.setattr(redis.Redis, "from_url", staticmethod(lambda url, **kwargs: fake))
    samples = _scrape()
    assert samples[("xai_celery_queue_depth", (("queue", "gpu"),))] == 5
    assert samples[("xai_celery_queue_depth", (("queue", "cpu"),))] == 2


@pytest.mark.django_db
def test_queue_depth_is_read_from_a_real_redis(settings):
    if not _redis_reachable(LOCAL_REDIS):
        pytest.skip(f"Redis at {LOCAL_REDIS} is not reachable (the fake-client test still runs)")
    import redis

    prefix = f"xai-test-{uuid.uuid4().hex}:"
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = LOCAL_REDIS
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"global_keyprefix": prefix}
    client = redis.Redis.from_url(LOCAL_REDIS)
    try:
        client.rpush(f"{prefix}gpu", "a", "b", "c")
        client.rpush(f"{prefix}cpu\x06\x166", "d")
        samples = _scrape()
    finally:
        client.delete(f"{prefix}gpu", f"{prefix}cpu\x06\x166")
        client.close()
    assert samples[("xai_celery_queue_depth", (("queue", "gpu"),))] == 3
    assert samples[("xai_celery_queue_depth", (("queue", "cpu"),))] == 1


@celery_app.task(name="tests.core.metrics_probe_task")
def _probe_task(fail: bool = False) -> str | None:
    if fail:
        raise ValueError("asked to fail")
    return task_id_var.get()


def _task_count(state: str) -> float:
    labels = {"task": "tests.core.metrics_probe_task", "state": state}
    return REGISTRY.get_sample_value("xai_celery_task_duration_seconds_count", labels) or 0.0


def test_task_run_times_are_recorded_by_name_and_state():
    succeeded, failed = _task_count("SUCCESS"), _task_count("FAILURE")
    result = _probe_task.apply()
    assert result.get() == result.id  # the task saw its own id (its log lines carry it)
    # As in a worker: the failure is recorded, not raised here (eager tasks re-raise in tests).
    failure = _probe_task.apply(kwargs={"fail": True}, throw=False)
    assert failure.state == "FAILURE"
    assert _task_count("SUCCESS") == succeeded + 1
    assert _task_count("FAILURE") == failed + 1
    assert task_id_var.get() is None  # cleared after the task, even a failed one


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_worker_serves_its_own_metrics_on_its_port(monkeypatch):
    port = _free_port()
    monkeypatch.setenv("WORKER_METRICS_PORT", str(port))
    monkeypatch.setenv("WORKER_METRICS_ADDR", "127.0.0.1")
    server, thread = metrics._on_worker_init()
    try:
        _probe_task.apply()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert 'xai_celery_task_duration_seconds_count{state="SUCCESS",task=' in text
    assert "xai_leases" not in text  # a worker never queries the database for a scrape


def test_no_worker_metrics_server_without_a_port(monkeypatch):
    monkeypatch.delenv("WORKER_METRICS_PORT", raising=False)
    assert metrics._on_worker_init() is None
    monkeypatch.setenv("WORKER_METRICS_PORT", "http")
    with pytest.raises(ValueError, match="WORKER_METRICS_PORT='http' is not a port number"):
        metrics._on_worker_init()


def test_several_processes_are_summed_in_multiprocess_mode(tmp_path):
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(root)}
    count = "from apps.core import metrics; metrics.answer_stored('forced_choice')"
    for _ in range(2):  # two web workers, one answer each
        subprocess.run([sys.executable, "-c", count], env=env, check=True, cwd=root)
    scrape = "from apps.core import metrics; print(metrics.generate_latest(metrics.process_registry()).decode())"
    text = subprocess.run(
        [sys.executable, "-c", scrape],
        env=env,
        check=True,
        cwd=root,
        capture_output=True,
        text=True,
    ).stdout
    assert _samples(text)[("xai_answers_stored_total", (("kind", "forced_choice"),))] == 2
