from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _fresh_rank_floors():
    """Each test starts with no per-process rank floor (see tests/studies/conftest.py)."""
    from apps.studies.allocation import lock_objects

    lock_objects._FLOORS.clear()
    yield
    lock_objects._FLOORS.clear()


@pytest.fixture(autouse=True)
def _provider_settings(settings):
    """Published links on an HTTPS address; no real provider is ever reachable from a test."""
    settings.PUBLIC_BASE_URL = "https://study.example.org"
    settings.MTURK_ENDPOINT_URL = "http://127.0.0.1:9"  # a test that calls MTurk sets its own
    settings.MTURK_ACCESS_KEY_ID = "AKIATESTTESTTESTTEST"
    settings.MTURK_SECRET_ACCESS_KEY = "test-secret"
    settings.PROLIFIC_API_URL = "http://127.0.0.1:9/api/v1"
    settings.PROLIFIC_API_TOKEN = "test-token"
    yield
