"""Which sites may show the rater pages in a frame, and where the end page may post.

MTurk shows a HIT's ExternalQuestion in an iframe on its worker sites; with
Django's site-wide ``X-Frame-Options: DENY`` the worker sees a blank HIT. The
rater pages (join, task, practice, end) are therefore exempted from that header
and their Content-Security-Policy (built for every page by
:mod:`apps.core.security`) says ``frame-ancestors 'self' <RATER_FRAME_ANCESTORS>``
instead, which names the allowed framing origins (``X-Frame-Options`` cannot name
another origin). Every other page (admin, results, home) keeps ``DENY`` and
``frame-ancestors 'none'``.

The end page (``rater-done``) posts the finished assignment to MTurk: its
``form-action`` also names ``MTURK_SUBMIT_HOSTS`` and the crowd sites (MTurk
redirects the posted form to its worker site, and Chrome checks ``form-action``
on that redirect too).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.views.decorators.clickjacking import xframe_options_exempt

from apps.core.security import FORM_ACTION_ATTR, FRAME_ANCESTORS_ATTR

# URL names of the pages with a form that leaves for the crowd provider.
END_PAGES = frozenset({"rater-done"})


def crowd_frameable(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Let the crowd sites (and only them) frame this view's responses, errors included."""

    @xframe_options_exempt  # no X-Frame-Options: it cannot name another origin
    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponseBase:
        response = view(request, *args, **kwargs)
        setattr(response, FRAME_ANCESTORS_ATTR, list(settings.RATER_FRAME_ANCESTORS))
        match = getattr(request, "resolver_match", None)
        if match is not None and match.url_name in END_PAGES:
            setattr(
                response,
                FORM_ACTION_ATTR,
                [*settings.MTURK_SUBMIT_HOSTS.values(), *settings.RATER_FRAME_ANCESTORS],
            )
        return response

    return wrapped
