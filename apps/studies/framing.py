"""Which sites may show the rater pages in a frame.

MTurk shows a HIT's ExternalQuestion in an iframe on its worker sites; with
Django's site-wide ``X-Frame-Options: DENY`` the worker sees a blank HIT. The
rater pages (join, task, end) are therefore exempted from that header and send
``Content-Security-Policy: frame-ancestors 'self' <RATER_FRAME_ANCESTORS>``
instead, which names the allowed framing origins (``X-Frame-Options`` cannot
name another origin). Every other page (admin, results, home) keeps ``DENY``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.views.decorators.clickjacking import xframe_options_exempt

# A CSP source expression: scheme://[*.]host[:port] (no path, nothing that
# would end the directive or the header).
_ORIGIN = re.compile(r"^https?://(\*\.)?[A-Za-z0-9.-]+(:[0-9]{1,5})?$")


def frame_ancestors_policy() -> str:
    origins = [o.rstrip("/") for o in settings.RATER_FRAME_ANCESTORS]
    allowed = [o for o in origins if _ORIGIN.fullmatch(o)]
    return " ".join(["frame-ancestors", "'self'", *allowed])


def crowd_frameable(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Let the crowd sites (and only them) frame this view's responses, errors included."""

    @xframe_options_exempt  # no X-Frame-Options: it cannot name another origin
    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponseBase:
        response = view(request, *args, **kwargs)
        response["Content-Security-Policy"] = frame_ancestors_policy()
        return response

    return wrapped
