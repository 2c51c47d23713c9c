"""Hardened HTTP: the Content-Security-Policy of each kind of page, the HTTPS redirect
and its probe exemptions, and the admin sign-in throttle (apps.core.security, .throttle)."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client

from apps.core.security import media_origins
from apps.studies.models import Participation
from tests.studies.helpers import launched_study

pytestmark = pytest.mark.django_db

MTURK_SITES = ["https://worker.mturk.com", "https://workersandbox.mturk.com"]


def _policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    directives = [part.split() for part in header.split("; ")]
    return {name: sources for name, *sources in directives}


def _assert_baseline(policy: dict[str, list[str]]) -> None:
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]  # no 'unsafe-inline', no 'unsafe-eval'
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'self'"]
    assert policy["img-src"][:2] == ["'self'", "data:"]
    assert "'unsafe-inline'" not in policy["style-src"]


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


# -- Content-Security-Policy -----------------------------------------------------------------


def test_rater_task_page_may_be_framed_by_mturk_and_nothing_else(settings):
    settings.RATER_FRAME_ANCESTORS = [*MTURK_SITES, "https://evil.example; script-src *"]
    code = launched_study().experiments.get(slug="pw").code
    client = Client()
    assert client.get(f"/r/{code}/").status_code == 200
    joined = client.post(f"/r/{code}/", {"consent": "yes"})
    assert joined.status_code == 302
    task = client.get(joined["Location"])
    assert task.status_code == 200 and b'id="progress-fill"' in task.content

    policy = _policy(task)
    _assert_baseline(policy)
    assert policy["frame-ancestors"] == ["'self'", *MTURK_SITES]  # the bad value dropped
    assert policy["style-src"] == ["'self'"]
    assert policy["form-action"] == ["'self'"]  # only the end page posts to MTurk
    assert "X-Frame-Options" not in task
    assert b"<script>" not in task.content and b" style=" not in task.content


def test_rater_end_page_may_post_to_the_mturk_submit_hosts_only(settings):
    settings.RATER_FRAME_ANCESTORS = MTURK_SITES
    study = launched_study(tasks_per_rater=1)
    code = study.experiments.get(slug="pw").code
    client = Client()
    client.get(f"/r/{code}/")
    client.post(f"/r/{code}/", {"consent": "yes"})
    assert Participation.objects.count() == 1
    done = client.get(f"/r/{code}/done/")
    assert done.status_code == 200
    policy = _policy(done)
    # the submit hosts, then the worker sites MTurk redirects the posted form to (no repeats)
    assert policy["form-action"] == [
        "'self'",
        "https://www.mturk.com",
        "https://workersandbox.mturk.com",
        "https://worker.mturk.com",
    ]
    assert policy["frame-ancestors"] == ["'self'", *MTURK_SITES]


def test_admin_pages_deny_framing_and_allow_style_attributes_only(admin_client):
    page = admin_client.get("/admin/studies/study/")
    assert page.status_code == 200
    policy = _policy(page)
    _assert_baseline(policy)
    assert policy["frame-ancestors"] == ["'none'"]
    assert page["X-Frame-Options"] == "DENY"
    assert policy["style-src-attr"] == ["'unsafe-inline'"]
    assert policy["form-action"] == ["'self'"]
    # every inline <style> block Django's change list renders is allowed by its hash
    for block in re.findall(rb"<style>(.*?)</style>", page.content, re.DOTALL):
        digest = base64.b64encode(hashlib.sha256(block).digest()).decode()
        assert f"'sha256-{digest}'" in policy["style-src"]


def test_login_page_of_the_admin_has_the_policy_too():
    page = Client().get("/admin/login/")
    assert page.status_code == 200
    policy = _policy(page)
    _assert_baseline(policy)
    assert policy["frame-ancestors"] == ["'none'"]


def test_api_docs_have_no_inline_script_and_their_inline_style_is_hashed(admin_client):
    docs = admin_client.get("/api/docs/")
    assert docs.status_code == 200
    policy = _policy(docs)
    _assert_baseline(policy)
    assert "style-src-attr" not in policy
    scripts = re.findall(rb"<script([^>]*)>(.*?)</script>", docs.content, re.DOTALL)
    assert scripts and all(b"src=" in attrs and not body.strip() for attrs, body in scripts)
    blocks = re.findall(rb"<style>(.*?)</style>", docs.content, re.DOTALL)
    assert len(blocks) == 1
    digest = base64.b64encode(hashlib.sha256(blocks[0]).digest()).decode()
    assert policy["style-src"] == ["'self'", f"'sha256-{digest}'"]
    # the init script is a same-origin file
    init = re.search(rb'<script src="([^"]*script=[^"]*)"', docs.content)
    assert init, docs.content[-600:]
    script = admin_client.get(init.group(1).decode().replace("&amp;", "&"))
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle" in script.content


def test_home_and_error_pages_get_the_strict_policy():
    # (/healthz, /readyz and /metrics are answered as JSON/text by apps.core.middleware's
    # ProbeMiddleware before this chain: no page, no policy needed.)
    for url in ("/", "/no-such-page/"):
        response = Client().get(url)
        policy = _policy(response)
        _assert_baseline(policy)
        assert policy["frame-ancestors"] == ["'none'"], url
        assert policy["style-src"] == ["'self'"], url


def test_images_from_the_s3_bucket_are_allowed(settings):
    s3 = "storages.backends.s3.S3Storage"
    settings.CSP_IMG_SRC_EXTRA = ["https://cdn.example.org", "javascript:alert(1)"]
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": s3,
            "OPTIONS": {"bucket_name": "xai", "endpoint_url": "https://minio.lab:9000"},
        },
    }
    assert media_origins() == [
        "https://minio.lab:9000",
        "https://xai.minio.lab:9000",
        "https://cdn.example.org",
    ]
    settings.STORAGES["default"]["OPTIONS"] = {
        "bucket_name": "xai",
        "region_name": "eu-west-1",
        "custom_domain": "media.example.org",
    }
    settings.CSP_IMG_SRC_EXTRA = []
    assert media_origins() == [
        "https://media.example.org",
        "https://xai.s3.amazonaws.com",
        "https://s3.amazonaws.com",
        "https://xai.s3.eu-west-1.amazonaws.com",
        "https://s3.eu-west-1.amazonaws.com",
    ]
    policy = _policy(Client().get("/"))
    assert policy["img-src"] == ["'self'", "data:", *media_origins()]


def test_local_storage_adds_no_image_origin(settings):
    settings.CSP_IMG_SRC_EXTRA = []
    assert media_origins() == []


# -- HTTPS -----------------------------------------------------------------------------------


def test_plain_http_is_redirected_except_the_probes(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    client = Client()  # (SecurityMiddleware reads its settings when the client builds it)
    home = client.get("/")
    assert home.status_code == 301 and home["Location"] == "https://testserver/"
    assert client.get("/healthz").status_code != 301
    assert client.get("/readyz").status_code != 301
    assert "Strict-Transport-Security" not in home
    # behind nginx, X-Forwarded-Proto: https is HTTPS (and gets HSTS)
    secure = client.get("/", headers={"x-forwarded-proto": "https"})
    assert secure.status_code == 200
    assert secure["Strict-Transport-Security"].startswith("max-age=31536000")


# -- admin sign-in throttle ------------------------------------------------------------------


def _login(client: Client, username: str, password: str, ip: str = "10.0.0.1"):
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": password},
        REMOTE_ADDR=ip,
    )


@pytest.fixture
def users():
    model = get_user_model()
    model.objects.create_superuser("alice", "a@example.invalid", "right-pw-alice")
    model.objects.create_superuser("bob", "b@example.invalid", "right-pw-bob")


def test_five_failures_lock_the_username_even_for_the_right_password(users, settings):
    assert settings.ADMIN_LOGIN_MAX_FAILURES_PER_USERNAME == 5
    client = Client()
    for _ in range(5):
        assert _login(client, "alice", "wrong").status_code == 200  # the form again
    refused = _login(client, "alice", "right-pw-alice")
    assert refused.status_code == 429
    assert b"Too many failed sign-ins for this username" in refused.content
    assert refused["Retry-After"] == str(settings.ADMIN_LOGIN_WINDOW_SECONDS)
    assert "Content-Security-Policy" in refused
    assert "_auth_user_id" not in client.session
    # the same username typed differently is the same username
    assert _login(Client(), "ALICE ", "right-pw-alice").status_code == 429
    # another user from the same address is not affected
    assert _login(client, "bob", "right-pw-bob").status_code == 302


def test_a_locked_username_is_not_checked_against_the_password(users, settings, monkeypatch):
    for _ in range(5):
        _login(Client(), "alice", "wrong")
    checked = []
    monkeypatch.setattr(
        "django.contrib.auth.backends.ModelBackend.authenticate",
        lambda *args, **kwargs: checked.append(kwargs) or None,
    )
    assert _login(Client(), "alice", "right-pw-alice").status_code == 429
    assert checked == []


def test_a_success_resets_the_username_count(users):
    client = Client()
    for _ in range(4):
        assert _login(client, "alice", "wrong").status_code == 200
    assert _login(client, "alice", "right-pw-alice").status_code == 302
    other = Client()
    for _ in range(4):
        assert _login(other, "alice", "wrong").status_code == 200
    assert _login(other, "alice", "right-pw-alice").status_code == 302


def test_twenty_failures_from_one_address_lock_that_address(users, settings):
    settings.ADMIN_LOGIN_MAX_FAILURES_PER_USERNAME = 1000
    assert settings.ADMIN_LOGIN_MAX_FAILURES_PER_IP == 20
    for n in range(20):
        assert _login(Client(), f"guess{n}", "wrong", ip="10.9.9.9").status_code == 200
    refused = _login(Client(), "bob", "right-pw-bob", ip="10.9.9.9")
    assert refused.status_code == 429
    assert b"from your network address" in refused.content
    assert _login(Client(), "bob", "right-pw-bob", ip="10.9.9.10").status_code == 302


def test_the_window_is_a_setting_and_the_lock_ends_with_it(users, settings):
    # a window of 0 seconds: the counter never survives, nothing is ever locked
    settings.ADMIN_LOGIN_WINDOW_SECONDS = 0
    for _ in range(6):
        assert _login(Client(), "alice", "wrong").status_code == 200
    assert _login(Client(), "alice", "right-pw-alice").status_code == 302
