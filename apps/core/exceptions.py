"""One error path for the whole API.

Services raise :class:`ApplicationError` (or Django's ``ValidationError``);
:func:`api_exception_handler` turns every error into
``{"message": ..., "code": ..., "extra": {...}}`` with a status code, so a
rater's browser and a researcher's script read errors the same way.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler


class ApplicationError(Exception):
    """A business rule refused the request; ``message`` is shown to the user."""

    status_code = 400

    def __init__(
        self,
        message: str,
        *,
        code: str = "error",
        extra: dict[str, Any] | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.extra = extra or {}
        if status_code is not None:
            self.status_code = status_code


class NotFoundError(ApplicationError):
    status_code = 404


class ConflictError(ApplicationError):
    """The request is valid but the state no longer allows it (full task, closed study)."""

    status_code = 409


def _first_message(detail: Any) -> str:
    if isinstance(detail, dict):
        for key, value in detail.items():
            inner = _first_message(value)
            return inner if key in ("non_field_errors", "detail") else f"{key}: {inner}"
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        return Response(
            {"message": exc.message, "code": exc.code, "extra": exc.extra},
            status=exc.status_code,
        )
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        exc = drf_exceptions.ValidationError(detail)
    elif isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = drf_exceptions.PermissionDenied()

    response = exception_handler(exc, context)
    if response is None:
        return None
    detail = response.data
    response.data = {
        "message": _first_message(detail),
        "code": getattr(exc, "default_code", "error"),
        "extra": {"fields": detail} if isinstance(detail, dict) else {},
    }
    return response
