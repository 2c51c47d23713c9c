"""/healthz and /readyz: alive, ready, and what is down (without secrets)."""

from __future__ import annotations

import boto3
import pytest
from django.db import OperationalError, connections
from django.test import Client
from moto import mock_aws

from apps.core import health

DB_PASSWORD = "db-pass-7f3a91"
AWS_SECRET = "aws-secret-0c55e2d8"
BROKER_PASSWORD = "broker-pass-91ab"


def _s3_storages(*, endpoint_url: str | None, **extra) -> dict:
    common = {
        "bucket_name": "xai-test",
        "endpoint_url": endpoint_url,
        "region_name": "us-east-1",
        "signature_version": "s3v4",
        **extra,
    }
    return {
        alias: {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {**common, "location": alias},
        }
        for alias in ("default", "pipeline", "results")
    } | {"staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}


def test_healthz_answers_without_touching_the_database():
    # No django_db mark: any query here would fail the test.
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]
    assert not response.cookies
    assert response["X-Request-ID"]


@pytest.mark.django_db
def test_readyz_is_ok_when_everything_answers(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the laptop: no broker (CI sets one)
    settings.CELERY_BROKER_URL = "memory://"
    response = Client().get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "status": "ok",
        "checks": {
            "database": "ok",
            "broker": "not configured (in-process)",
            "storage:default": "ok",
            "storage:pipeline": "ok",
            "storage:results": "ok",
        },
    }
    assert "no-cache" in response["Cache-Control"]
    assert not response.cookies


@pytest.mark.django_db
def test_probes_answer_a_host_outside_allowed_hosts_over_plain_http(settings):
    # Kubernetes probes ask the pod's address; HTTPS redirects would fail them too.
    settings.ALLOWED_HOSTS = ["xai-crowd.example.org"]
    settings.SECURE_SSL_REDIRECT = True
    client = Client(HTTP_HOST="10.1.2.3:8000")
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/").status_code == 400  # every other page still checks the host


@pytest.mark.django_db
def test_readyz_names_the_database_when_it_is_down(monkeypatch):
    monkeypatch.setitem(connections["default"].settings_dict, "PASSWORD", DB_PASSWORD)

    def refuse():
        raise OperationalError(
            f"connection to postgres://xai:{DB_PASSWORD}@db:5432/xai failed: "
            f'password "{DB_PASSWORD}" rejected'
        )

    monkeypatch.setattr(connections["default"], "cursor", refuse)
    response = Client().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"].startswith("down: OperationalError")
    assert body["checks"]["storage:default"] == "ok"
    assert DB_PASSWORD not in response.content.decode()
    assert "postgres://" not in response.content.decode()


@pytest.mark.django_db
def test_readyz_names_the_storage_when_s3_is_unreachable(settings, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    settings.AWS_SECRET_ACCESS_KEY = AWS_SECRET
    settings.READYZ_TIMEOUT_SECONDS = 0.5
    # Port 9 (discard) refuses connections: a dead endpoint.
    settings.STORAGES = _s3_storages(endpoint_url="http://127.0.0.1:9", secret_key=AWS_SECRET)
    response = Client().get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"] == "ok"
    for alias in ("default", "pipeline", "results"):
        assert checks[f"storage:{alias}"].startswith("down: "), checks
    text = response.content.decode()
    assert AWS_SECRET not in text
    assert "http://127.0.0.1:9" not in text


@pytest.mark.django_db
def test_readyz_is_ok_with_a_reachable_s3_bucket(settings, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="xai-test")
        settings.STORAGES = _s3_storages(endpoint_url=None)
        response = Client().get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["checks"]["storage:results"] == "ok"


@pytest.mark.django_db
def test_readyz_names_a_missing_bucket(settings, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        settings.STORAGES = _s3_storages(endpoint_url=None)
        response = Client().get("/readyz")
    assert response.status_code == 503
    assert "NoSuchBucket" in response.json()["checks"]["storage:default"]


@pytest.mark.django_db
def test_readyz_names_the_broker_when_redis_is_down_without_its_password(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = f"redis://:{BROKER_PASSWORD}@127.0.0.1:9/0"
    settings.READYZ_TIMEOUT_SECONDS = 0.5
    response = Client().get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["broker"].startswith("down: ")
    assert checks["database"] == "ok"
    assert BROKER_PASSWORD not in response.content.decode()


def test_a_reason_loses_urls_and_secrets(settings):
    settings.PROLIFIC_API_TOKEN = "prolific-token-123456"
    reason = health.short_reason(
        RuntimeError("GET https://user:pw@api.example.org/x failed; token prolific-token-123456")
    )
    assert reason == "down: RuntimeError: GET <url> failed; token <secret>"
    assert len(health.short_reason(RuntimeError("x" * 1000))) < 200


def test_readyz_refuses_post():
    assert Client().post("/readyz").status_code == 405
