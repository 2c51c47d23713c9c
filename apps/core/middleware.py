"""Request-level middlewares: database plan mode, request ids, health probes."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.signals import request_finished
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

from apps.core import rawsql
from apps.core.logs import request_id_from_header, request_id_var, task_id_var


class PlanModeMiddleware:
    """Rater pages and API plan with indexes only; every other page as usual.

    See :func:`apps.core.rawsql.plan_with_indexes_only`. The setting belongs
    to the (persistent) connection, so it is switched only when a request of
    the other kind comes: a rater request after a rater request costs nothing.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.prefixes = tuple(settings.INDEX_PLAN_PATHS)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        rawsql.plan_with_indexes_only(request.path_info.startswith(self.prefixes))
        return self.get_response(request)


class RequestIdMiddleware:
    """Gives each request an id: the caller's ``X-Request-ID`` if sane, else a new one.

    The id lives in a context variable until the response is closed (Django
    logs some 4xx/5xx responses after the middlewares returned), so every log
    line of the request carries it (:mod:`apps.core.logs`); it goes back in the
    ``X-Request-ID`` response header. nginx may send its ``$request_id``.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_from_header(request.headers.get("X-Request-ID"))
        request.request_id = request_id  # type: ignore[attr-defined]
        request_id_var.set(request_id)
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


@receiver(request_finished, dispatch_uid="xai-request-id-clear")
def _clear_request_id(**kwargs: object) -> None:
    """The response is closed: later log lines of this thread belong to no request (nor
    to an in-process task that failed during it)."""
    request_id_var.set(None)
    task_id_var.set(None)


class ProbeMiddleware:
    """Answers ``/healthz``, ``/readyz`` and ``/metrics`` before the rest of the chain.

    Probes and scrapers ask the pod or host address over plain HTTP, often with
    a Host header that is not in ALLOWED_HOSTS: answered here, they never meet
    the host check, the HTTPS redirect, sessions, CSRF or authentication, and no
    cookie is ever read or set. Placed right after :class:`RequestIdMiddleware`
    (the Prometheus middlewares still count them). The same views are in
    config/urls.py, so they also work without this middleware.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info not in self.PATHS:  # every other request: one set lookup
            return self.get_response(request)
        from apps.core import health, metrics

        view = {
            "/healthz": health.healthz,
            "/readyz": health.readyz,
            "/metrics": metrics.metrics_view,
        }[request.path_info]
        return view(request)
