"""Rater pages plan with indexes only; other pages plan as usual (PostgreSQL)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client

from tests.studies.helpers import launched_study

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def _seqscan() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW enable_seqscan")
        return cursor.fetchone()[0]


def test_the_plan_mode_follows_the_kind_of_page():
    study = launched_study()
    client = Client()
    assert client.get(f"/r/{study.experiments.get(slug='pw').code}/").status_code == 200
    assert _seqscan() == "off"
    assert client.get("/admin/login/").status_code == 200
    assert _seqscan() == "on"
    client.get("/api/r/abcdef/next")  # even a refused rater request
    assert _seqscan() == "off"
