from __future__ import annotations

import os
import subprocess
import sys

import pytest

from config.env import ImproperlyConfiguredEnv, env_bool, env_int

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _settings_in_subprocess(**env: str) -> subprocess.CompletedProcess:
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings';"
        "from django.conf import settings;"
        "print(settings.DATABASES['default']['ENGINE'], settings.CELERY_TASK_ALWAYS_EAGER, settings.MEDIA_ROOT)"
    )
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY", "DEBUG", "MEDIA_ROOT")
    }
    return subprocess.run(
        [sys.executable, "-c", code], env={**clean, **env}, cwd=ROOT, capture_output=True, text=True
    )


def test_laptop_defaults_are_sqlite_and_eager_celery():
    result = _settings_in_subprocess(DEBUG="1")  # DEBUG is off unless set (test_deploy_settings)
    assert result.returncode == 0, result.stderr
    engine, eager, media = result.stdout.split()
    assert engine.endswith("sqlite3") and eager == "True" and media.endswith("var/media")


def test_environment_selects_postgres_broker_and_media():
    result = _settings_in_subprocess(
        DEBUG="1",
        DATABASE_URL="postgres://u@db:5432/x",
        CELERY_BROKER_URL="redis://r:6379/0",
        MEDIA_ROOT="/srv/media",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.postgresql", "False", "/srv/media"]


def test_secret_key_is_required_when_debug_is_off():
    result = _settings_in_subprocess()  # DEBUG unset is DEBUG off
    assert result.returncode != 0
    assert "Set the environment variable SECRET_KEY" in result.stderr


def test_env_readers_name_the_bad_variable(monkeypatch):
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(ImproperlyConfiguredEnv, match="X_FLAG='maybe' is not a boolean"):
        env_bool("X_FLAG", False)
    monkeypatch.setenv("X_NUM", "ten")
    with pytest.raises(ImproperlyConfiguredEnv, match="X_NUM='ten' is not an integer"):
        env_int("X_NUM", 1)
