"""Shared fixtures and the skip-or-fail policy for tests needing services.

Tests marked ``postgres``, ``worker`` or ``browser`` need PostgreSQL, a Redis
broker (a Celery worker is started by the test) or Debian's Chromium. Where
one is missing they skip with the reason printed (``-ra``); with
``XAI_REQUIRE_ALL=1`` (set by .ci/run) a missing service fails the test
instead, so CI can never pass by skipping them.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.conf import settings

CHROMIUM = "/usr/bin/chromium"


def _require_all() -> bool:
    return os.environ.get("XAI_REQUIRE_ALL", "") == "1"


def _redis_reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), 1):
            return True
    except OSError:
        return False


def _missing(marker: str) -> str | None:
    is_postgres = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    if marker == "postgres" and not is_postgres:
        return "needs PostgreSQL: set DATABASE_URL=postgres://postgres@127.0.0.1:5432/xai_crowd"
    if marker == "worker":
        broker = os.environ.get("CELERY_BROKER_URL", "")
        if not broker:
            return "needs a Celery broker: set CELERY_BROKER_URL=redis://127.0.0.1:6379/0"
        if not _redis_reachable(broker):
            return f"Redis at {broker} is not reachable"
        if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
            return (
                "the worker test needs PostgreSQL (a worker process cannot share SQLite's test DB)"
            )
    if marker == "browser" and not Path(CHROMIUM).exists():
        return f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium chromium-driver)"
    return None


def pytest_runtest_setup(item):
    for marker in ("postgres", "worker", "browser"):
        if marker in item.keywords:
            reason = _missing(marker)
            if reason is None:
                continue
            if _require_all():
                pytest.fail(f"XAI_REQUIRE_ALL=1 but this test {reason}", pytrace=False)
            pytest.skip(reason)


@pytest.fixture(autouse=True)
def _isolated_storage(settings, tmp_path):
    """Each test writes media, pipeline and results files under its own temporary folder
    (the local storages' locations are fixed when settings load: point them there too)."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PIPELINE_ROOT = tmp_path / "pipeline"
    settings.RESULTS_ROOT = tmp_path / "results"
    local = {"default": settings.MEDIA_ROOT, "pipeline": settings.PIPELINE_ROOT,
             "results": settings.RESULTS_ROOT}  # fmt: skip
    settings.STORAGES = {
        alias: {**conf, "OPTIONS": {**conf.get("OPTIONS", {}), "location": str(local[alias])}}
        if alias in local and conf["BACKEND"].endswith("FileSystemStorage") else conf
        for alias, conf in settings.STORAGES.items()
    }  # fmt: skip
    yield


def pytest_report_header(config):
    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    return [
        f"xai-crowd: database={engine} broker={os.environ.get('CELERY_BROKER_URL') or 'eager'} "
        f"chromium={'yes' if shutil.which('chromium') or Path(CHROMIUM).exists() else 'no'} "
        f"require_all={_require_all()}"
    ]


@pytest.fixture(autouse=True)
def _celery_mode(request):
    """Tasks run eagerly in tests, except in ``worker`` tests, which use a real worker."""
    from config.celery_app import app

    eager = "worker" not in request.keywords
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = eager
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def admin_client_():
    """A logged-in superuser's client (the researcher in the admin)."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    user = get_user_model().objects.create_superuser("adm", "adm@example.invalid", "pw-123456")
    client = Client()
    client.force_login(user)
    return client
