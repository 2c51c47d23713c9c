"""The api_token command, the OpenAPI schema and docs, and a schemathesis run (no 5xx)."""

from __future__ import annotations

from io import StringIO

import pytest
import schemathesis
from django.core.management import CommandError, call_command
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given, settings
from rest_framework.authtoken.models import Token

from tests.studies.helpers import answer_one, join


def test_api_token_creates_then_shows_the_token(researcher):
    out = StringIO()
    call_command("api_token", "ada", stdout=out, stderr=StringIO())
    key = out.getvalue().strip()
    assert key == Token.objects.get(user=researcher).key
    again = StringIO()
    call_command("api_token", "ada", stdout=again, stderr=StringIO())
    assert again.getvalue().strip() == key
    reset = StringIO()
    call_command("api_token", "ada", "--reset", stdout=reset, stderr=StringIO())
    assert reset.getvalue().strip() not in ("", key)


@pytest.mark.django_db
def test_api_token_of_an_unknown_user_fails():
    with pytest.raises(CommandError, match="No user 'ghost'"):
        call_command("api_token", "ghost")


@pytest.mark.django_db
def test_the_schema_and_docs_are_served(client):
    yaml_schema = client.get("/api/schema/")
    assert yaml_schema.status_code == 200
    assert b"openapi: 3" in yaml_schema.content
    json_schema = client.get("/api/schema/?format=json").json()
    assert json_schema["info"]["title"] == "xai-crowd researcher API"
    assert all(path.startswith("/api/v1/") for path in json_schema["paths"])  # no rater API
    assert "/api/v1/studies/{slug}/responses.csv" in json_schema["paths"]
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()
    assert b"cdn.jsdelivr" not in docs.content  # assets served from this site (offline)
    assert b"/static/drf_spectacular_sidecar/" in docs.content


def _schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


@pytest.fixture
def wsgi_in_test_transaction():
    """Django's WSGI handler closes 'old' connections around each request, which would
    close the test's transaction; the test client turns that off the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield get_wsgi_application()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def test_schemathesis_finds_no_server_error(researcher, study, wsgi_in_test_transaction):
    """Every operation, a few generated cases each, with a researcher's token: no 5xx."""
    # given a study with some answers, so lists and pages have rows
    rater = join(study.experiments.get(slug="pw"))
    answer_one(rater)
    token = Token.objects.create(user=researcher).key
    schema = schemathesis.openapi.from_dict(_schema())
    app = wsgi_in_test_transaction
    failures: list[str] = []
    statuses: list[int] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        _fuzz(operation, app=app, token=token, study=study, failures=failures, statuses=statuses)
    # then every operation was called, and none answered a server error
    assert len(operations) == 14 and len(statuses) >= len(operations)
    assert 200 in statuses
    assert failures == []


def _fuzz(operation, *, app, token: str, study, failures: list[str], statuses: list[int]):
    """A few generated cases of one operation against the WSGI app; 5xx are collected."""

    @settings(max_examples=8, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(operation.as_strategy())
    def check(case):
        if "slug" in (case.path_parameters or {}):  # the real objects: deeper code paths
            family = operation.path.startswith("/api/v1/families/")
            case.path_parameters["slug"] = study.family.slug if family else study.slug
        response = case.call(app=app, headers={"Authorization": f"Token {token}"})
        statuses.append(response.status_code)
        if response.status_code >= 500:
            failures.append(f"{case.method} {case.path} {case.path_parameters}: {response.text}")

    check()
