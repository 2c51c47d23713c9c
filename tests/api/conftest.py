"""Researchers, tokens and studies for the researcher API tests."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from apps.studies.models import Study
from tests.factories import CLASS_NAMES
from tests.studies.helpers import launched_study

# Small enough to build in well under a second: 3 classes, the CPRs the helper's designs use.
SMALL = {"class_names": CLASS_NAMES[:3], "cprs": [1, 2, 4, 8]}


def small_study(slug: str, **kwargs) -> Study:
    """``launched_study`` on a small family (a pairwise and a forced-choice experiment)."""
    return launched_study(slug=slug, family_kwargs=SMALL, **kwargs)


def make_user(username: str, *, staff: bool = True, superuser: bool = False):
    return get_user_model().objects.create_user(
        username, f"{username}@example.invalid", None,  # no password: hashing is slow
        is_staff=staff or superuser, is_superuser=superuser,
    )  # fmt: skip


def token_client(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture(autouse=True)
def _isolated_results(settings, tmp_path):
    settings.RESULTS_ROOT = tmp_path / "results"


@pytest.fixture
def researcher(db):
    return make_user("ada")


@pytest.fixture
def api(researcher) -> APIClient:
    """The researcher's token client."""
    return token_client(researcher)


@pytest.fixture
def study(researcher) -> Study:
    """A launched study (a pairwise and a forced-choice experiment) owned by ``researcher``."""
    study = small_study("mine")
    Study.objects.filter(pk=study.pk).update(created_by=researcher)
    study.refresh_from_db()
    return study


@pytest.fixture
def others_study(db) -> Study:
    """A study of another researcher: invisible to ``researcher``."""
    study = small_study("theirs")
    Study.objects.filter(pk=study.pk).update(created_by=make_user("bob"))
    study.refresh_from_db()
    return study
