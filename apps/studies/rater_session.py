"""Which participation a browser belongs to.

A rater is identified by their Django session (a signed, HTTP-only cookie):
``participation:<experiment code>`` holds their participation id. Unsafe
requests must carry the CSRF token, whether or not a Django user is logged in.
"""

from __future__ import annotations

from django.middleware.csrf import CsrfViewMiddleware
from rest_framework.request import Request

from apps.core.exceptions import ApplicationError
from apps.studies.models import Participation


def session_key(code: str) -> str:
    return f"participation:{code}"


def remember_participation(request, *, code: str, participation: Participation) -> None:
    request.session[session_key(code)] = participation.pk


def participation_from_session(request, *, code: str) -> Participation | None:
    pk = request.session.get(session_key(code))
    if pk is None:
        return None
    return (
        Participation.objects.select_related("experiment__study", "rater")
        .filter(pk=pk, experiment__code=code)
        .first()
    )


class _CsrfCheck(CsrfViewMiddleware):
    def _reject(self, request, reason):
        return reason


def require_participation(request: Request, *, code: str) -> Participation:
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        reason = _CsrfCheck(lambda req: None).process_view(request._request, None, (), {})
        if reason:
            raise ApplicationError(
                "Your page is out of date (security token missing); reload it.",
                code="csrf",
                status_code=403,
            )
    participation = participation_from_session(request, code=code)
    if participation is None:
        raise ApplicationError(
            "Your session has ended. Open the study link again to continue.",
            code="no_session",
            status_code=403,
        )
    return participation
