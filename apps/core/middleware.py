"""Request-level database settings."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from apps.core import rawsql


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
