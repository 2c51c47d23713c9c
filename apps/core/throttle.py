"""Admin sign-in throttle: too many failed passwords and the door closes for a while.

After ``ADMIN_LOGIN_MAX_FAILURES_PER_USERNAME`` failed sign-ins for one username,
or ``ADMIN_LOGIN_MAX_FAILURES_PER_IP`` from one client address, within
``ADMIN_LOGIN_WINDOW_SECONDS`` (counted from the first failure), every further
POST to the admin sign-in page gets 429 and the password is not checked at all,
right or wrong. A successful sign-in clears its username's count.

Counters live in Django's cache: locmem counts per process; production sets
``REDIS_CACHE_URL`` so every gunicorn worker shares them. The client address
follows the rater pages' proxy rule (``RATER_TRUSTED_PROXIES``); usernames are
hashed before they become cache keys.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.cache import cache
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.urls import NoReverseMatch, reverse

_PREFIX = "admin-login-failures"


def _admin_login_path() -> str | None:
    try:
        return reverse("admin:login")
    except NoReverseMatch:
        return None


def _client_ip(request: HttpRequest) -> str:
    from apps.studies.identity import client_ip  # the one proxy rule of the site

    return client_ip(request.META) or "unknown"


def _username_key(username: str) -> str:
    digest = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    return f"{_PREFIX}:user:{digest}"


def _ip_key(address: str) -> str:
    return f"{_PREFIX}:ip:{address}"


def _count(key: str) -> int:
    return int(cache.get(key, 0))


def _bump(key: str) -> None:
    # add() starts the window with the first failure; incr() keeps its expiry.
    if not cache.add(key, 1, timeout=settings.ADMIN_LOGIN_WINDOW_SECONDS):
        try:
            cache.incr(key)
        except ValueError:  # expired between add() and incr(): a new window
            cache.add(key, 1, timeout=settings.ADMIN_LOGIN_WINDOW_SECONDS)


def refusal(request: HttpRequest, username: str) -> str | None:
    """Why this sign-in attempt is refused without checking the password, or None."""
    minutes = max(1, settings.ADMIN_LOGIN_WINDOW_SECONDS // 60)
    if (
        username
        and _count(_username_key(username)) >= settings.ADMIN_LOGIN_MAX_FAILURES_PER_USERNAME
    ):
        return (
            f"Too many failed sign-ins for this username: sign-in is blocked for up to "
            f"{minutes} minutes. Wait, or ask another administrator to reset the password."
        )
    if _count(_ip_key(_client_ip(request))) >= settings.ADMIN_LOGIN_MAX_FAILURES_PER_IP:
        return (
            f"Too many failed sign-ins from your network address: sign-in is blocked for "
            f"up to {minutes} minutes."
        )
    return None


def _is_admin_login(request: HttpRequest | None) -> bool:
    return (
        request is not None
        and request.method == "POST"
        and request.path_info == _admin_login_path()
    )


@receiver(user_login_failed, dispatch_uid="admin-login-throttle-failed")
def _count_failure(sender, credentials: dict, request: HttpRequest | None = None, **kwargs) -> None:
    if not _is_admin_login(request):
        return
    username = str(credentials.get("username") or "")
    if username:
        _bump(_username_key(username))
    _bump(_ip_key(_client_ip(request)))


@receiver(user_logged_in, dispatch_uid="admin-login-throttle-success")
def _clear_on_success(sender, request: HttpRequest | None, user, **kwargs) -> None:
    if _is_admin_login(request):
        cache.delete(_username_key(user.get_username()))


class AdminLoginThrottleMiddleware:
    """Refuses (429) a POST to the admin sign-in page once :func:`refusal` says so."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if _is_admin_login(request):
            reason = refusal(request, str(request.POST.get("username", "")))
            if reason is not None:
                response = HttpResponse(
                    f"<!doctype html><title>Too many sign-in attempts</title>"
                    f"<h1>Too many sign-in attempts</h1><p>{reason}</p>",
                    status=429,
                )
                response["Retry-After"] = str(settings.ADMIN_LOGIN_WINDOW_SECONDS)
                return response
        return self.get_response(request)
