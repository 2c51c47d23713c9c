"""Every endpoint: 401 without credentials, 403 for non-staff, 404 for another researcher's
study, always in the one error shape (``message``, ``code``, ``extra``)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.api.conftest import make_user, token_client

STUDY_ENDPOINTS = [
    ("get", "/api/v1/studies/{slug}/"),
    ("post", "/api/v1/studies/{slug}/launch/"),
    ("post", "/api/v1/studies/{slug}/pause/"),
    ("post", "/api/v1/studies/{slug}/resume/"),
    ("post", "/api/v1/studies/{slug}/close/"),
    ("get", "/api/v1/studies/{slug}/progress/"),
    ("get", "/api/v1/studies/{slug}/raters/"),
    ("get", "/api/v1/studies/{slug}/responses/"),
    ("get", "/api/v1/studies/{slug}/responses.csv"),
    ("get", "/api/v1/studies/{slug}/results/"),
    ("get", "/api/v1/studies/{slug}/results/summary.md"),
]
ENDPOINTS = [
    ("get", "/api/v1/families/"),
    ("get", "/api/v1/families/fam-mine/"),
    ("get", "/api/v1/studies/"),
    *STUDY_ENDPOINTS,
]


def _assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"message", "code", "extra"}
    assert body["message"]
    if code:
        assert body["code"] == code
    return body


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
def test_without_credentials_is_401(method, url):
    response = getattr(APIClient(), method)(url.format(slug="mine"))
    body = _assert_error(response, 401, "not_authenticated")
    assert "credentials" in body["message"]
    assert response["WWW-Authenticate"] == "Token"


@pytest.mark.django_db
def test_a_bad_token_is_401():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    body = _assert_error(client.get("/api/v1/studies/"), 401, "authentication_failed")
    assert "token" in body["message"].lower()


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
def test_non_staff_is_403(study, method, url):
    client = token_client(make_user("rita", staff=False))
    body = _assert_error(getattr(client, method)(url.format(slug=study.slug)), 403)
    assert "staff" in body["message"]


@pytest.mark.parametrize(("method", "url"), STUDY_ENDPOINTS)
def test_another_researchers_study_is_404_like_a_missing_one(api, others_study, method, url):
    hidden = getattr(api, method)(url.format(slug=others_study.slug))
    missing = getattr(api, method)(url.format(slug="no-such-study"))
    body = _assert_error(hidden, 404, "not_found")
    assert body["message"] == f"No study '{others_study.slug}' visible to you."
    assert _assert_error(missing, 404)["message"] == "No study 'no-such-study' visible to you."
    others_study.refresh_from_db()
    assert others_study.status == "live"  # no action reached it


def test_an_unknown_api_path_is_a_json_404(api):
    body = _assert_error(api.get("/api/v1/nothing/here/"), 404, "not_found")
    assert "/api/v1/nothing/here/" in body["message"]


def test_a_wrong_method_is_a_json_405(api, study):
    _assert_error(api.get(f"/api/v1/studies/{study.slug}/launch/"), 405)


def test_the_session_of_a_staff_user_works_too(researcher, study):
    client = APIClient()
    client.force_login(researcher)
    assert client.get(f"/api/v1/studies/{study.slug}/").status_code == 200


def test_the_browsable_ui_renders_for_a_session(researcher, study):
    client = APIClient()
    client.force_login(researcher)
    response = client.get(f"/api/v1/studies/{study.slug}/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
