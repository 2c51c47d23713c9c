"""The researcher API's base view and its limit/offset pages.

Authentication: a token (``Authorization: Token <key>``, see the
``api_token`` command) or the admin session (browsable UI). Token auth comes
first so a request without credentials is a 401 with ``WWW-Authenticate:
Token``. Errors come out of :func:`apps.core.exceptions.api_exception_handler`
as ``{"message", "code", "extra"}``.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.utils.urls import remove_query_param, replace_query_param
from rest_framework.views import APIView

from apps.api.permissions import IsResearcher

PAGE_LIMIT_DEFAULT = 100
PAGE_LIMIT_MAX = 1000


class ResearcherApi(APIView):
    authentication_classes = (TokenAuthentication, SessionAuthentication)
    permission_classes = (IsResearcher,)
    renderer_classes = (JSONRenderer, BrowsableAPIRenderer)


class FileApi(ResearcherApi):
    """A view whose success body is a file (CSV, PNG, ...): errors are always JSON, whatever
    the ``Accept`` header asks for, so there is nothing to negotiate."""

    renderer_classes = (JSONRenderer,)

    def perform_content_negotiation(self, request, force=False):
        renderer = self.renderer_classes[0]()
        return renderer, renderer.media_type


class PageInput(serializers.Serializer):
    limit = serializers.IntegerField(
        required=False, default=PAGE_LIMIT_DEFAULT, min_value=1, max_value=PAGE_LIMIT_MAX,
        help_text=f"Rows per page (1-{PAGE_LIMIT_MAX}, default {PAGE_LIMIT_DEFAULT}).",
    )  # fmt: skip
    offset = serializers.IntegerField(
        required=False, default=0, min_value=0, max_value=2**31 - 1,
        help_text="Rows to skip.",
    )  # fmt: skip


def query_input(serializer_class: type[serializers.Serializer], request: Request) -> dict:
    """The validated query string (a plain dict: a missing boolean stays missing)."""
    serializer = serializer_class(data=request.query_params.dict())
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def page_links(
    request: Request, *, limit: int, offset: int, has_next: bool
) -> dict[str, str | None]:
    url = request.build_absolute_uri()
    next_url = None
    if has_next:
        next_url = replace_query_param(
            replace_query_param(url, "limit", limit), "offset", offset + limit
        )
    previous = None
    if offset > 0:
        previous = replace_query_param(url, "limit", limit)
        previous = (
            remove_query_param(previous, "offset")
            if offset - limit <= 0
            else replace_query_param(previous, "offset", offset - limit)
        )
    return {"next": next_url, "previous": previous}


def page_serializer(name: str, child: type[serializers.Serializer], *, count: bool):
    """The schema of a page of ``child`` rows: ``count`` (optional), ``next``, ``previous``,
    ``results``."""
    fields: dict[str, Any] = {
        "next": serializers.URLField(allow_null=True),
        "previous": serializers.URLField(allow_null=True),
        "results": child(many=True),
    }
    if count:
        fields = {"count": serializers.IntegerField(), **fields}
    return type(name, (serializers.Serializer,), fields)


class ErrorOutput(serializers.Serializer):
    """Every error of the API (``apps.core.exceptions.api_exception_handler``)."""

    message = serializers.CharField(help_text="What went wrong, for a person to read.")
    code = serializers.CharField(help_text="A stable machine-readable code, e.g. not_found.")
    extra = serializers.DictField(help_text="Details, e.g. per-field messages of a 400.")


def error_responses(*statuses: int) -> dict[int, type[serializers.Serializer]]:
    """401 and 403 (every view) plus ``statuses``, each with the one error shape."""
    return {status: ErrorOutput for status in (401, 403, *statuses)}
