"""Rater HTML pages: join (instructions), the task page, the end page.

The task page is a shell; ``frontend/static/rater/task.js`` drives it through
the JSON API in ``apis.py`` with the signed rater token the page carries.
Which participation a browser is on in an experiment is the ``xr_<code>``
cookie; the browser itself is the ``xai_b`` cookie (see ``identity``). MTurk
shows these pages in a cross-site frame where no cookie is sent: there the
token travels in the URL (``?t=``) from the join to the task and end pages.
These pages may be framed by the crowd sites only (:mod:`.framing`).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from apps.core.exceptions import ApplicationError
from apps.recruitment.selectors import crowd_end
from apps.studies import identity
from apps.studies.framing import crowd_frameable
from apps.studies.models import Experiment, Participation, Rater, Study
from apps.studies.selectors import example_presentation, participation_end
from apps.studies.services import experiment_by_code, rater_exclusion_check, rater_join


def _message(request: HttpRequest, message: str, *, status: int) -> HttpResponse:
    return render(request, "rater/message.html", {"message": message}, status=status)


def _error(request: HttpRequest, exc: ApplicationError) -> HttpResponse:
    return _message(request, exc.message, status=exc.status_code)


def _set_cookie(response: HttpResponse, name: str, value: str) -> None:
    response.set_cookie(
        name,
        value,
        max_age=settings.RATER_COOKIE_AGE,
        httponly=True,
        samesite="Lax",
        secure=settings.SESSION_COOKIE_SECURE,
    )


def _participation(pk: int, code: str) -> Participation | None:
    return (
        Participation.objects.select_related("experiment__study", "rater")
        .filter(pk=pk, experiment__code=code)
        .first()
    )


def _cookie_participation(request: HttpRequest, code: str) -> Participation | None:
    """The participation this browser is on in experiment ``code``, if it is really its own."""
    token = request.COOKIES.get(identity.participation_cookie(code))
    participation_id = identity.participation_id_from_token(token, code=code)
    browser = identity.browser_id(request.COOKIES)
    if participation_id is None or browser is None:
        return None
    participation = _participation(participation_id, code)
    if participation is None or participation.browser_hash != identity.browser_hash(browser):
        return None
    return participation


@dataclass(frozen=True)
class _Session:
    participation: Participation | None
    url_token: str | None = None  # the page came with ``?t=``: keep it in the next links
    bad_url_token: bool = False


def _rater_session(request: HttpRequest, code: str) -> _Session:
    """The participation of this page: the ``xr_<code>`` cookie's, else the URL's ``?t=`` token.

    MTurk shows the pages in a cross-site frame, where the cookie is never
    sent: there the signed token in the URL alone identifies the
    participation, as the ``X-Rater-Token`` header does for the API.
    """
    participation = _cookie_participation(request, code)
    if participation is not None:
        return _Session(participation)
    token = request.GET.get(identity.TOKEN_PARAM)
    if not token:
        return _Session(None)
    participation_id = identity.participation_id_from_token(token, code=code)
    participation = None if participation_id is None else _participation(participation_id, code)
    if participation is None:
        return _Session(None, bad_url_token=True)
    return _Session(participation, url_token=token)


def _url(name: str, code: str, token: str | None = None) -> str:
    url = reverse(name, kwargs={"code": code})
    return f"{url}?{urlencode({identity.TOKEN_PARAM: token})}" if token else url


def _no_session(request: HttpRequest, code: str, session: _Session) -> HttpResponse:
    if session.bad_url_token:  # in MTurk's frame: the join page would not know the worker
        return _message(
            request,
            "This page's session link is not valid any more. Open the task again from the "
            "page where you started it (on MTurk: reload the HIT).",
            status=403,
        )
    return redirect("rater-join", code=code)


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


def _join(
    request: HttpRequest, code: str, experiment: Experiment, who: identity.CrowdIdentity
) -> HttpResponse:
    browser = identity.browser_id(request.COOKIES) or identity.new_browser_id()
    try:
        participation = rater_join(
            experiment=experiment,
            identity=who,
            browser=browser,
            ip=identity.client_ip(request.META),
        )
    except ApplicationError as exc:
        return _error(request, exc)
    token = identity.rater_token(code=code, participation_id=participation.pk)
    # MTurk's frame sends no cookies back: the task page gets the token in its URL.
    in_frame = who.source == Rater.Source.MTURK
    response = redirect(_url("rater-task", code, token if in_frame else None))
    _set_cookie(response, identity.BROWSER_COOKIE, browser)
    _set_cookie(response, identity.participation_cookie(code), token)
    return response


@method_decorator([never_cache, crowd_frameable, csrf_exempt], name="dispatch")
class JoinView(View):
    """The instructions and the Start button; an MTurk preview shows an example task instead.

    CSRF: the Start form of an MTurk worker is posted from MTurk's cross-site
    frame, where the CSRF cookie is not sent, so the view is exempt and checks
    CSRF itself for every other kind of rater. An MTurk join needs no cookie
    protection: what it starts is named entirely by the link (worker and
    assignment ids), exactly as a GET of that link would be.
    """

    def _experiment(self, code: str) -> Experiment:
        return experiment_by_code(code=code)

    def get(self, request: HttpRequest, code: str) -> HttpResponse:
        try:
            experiment = self._experiment(code)
            who = identity.crowd_identity(request.GET)
            rater_exclusion_check(
                study=experiment.study, identity=who, browser=identity.browser_id(request.COOKIES)
            )
        except ApplicationError as exc:
            return _error(request, exc)
        if experiment.study.status not in (Study.Status.LIVE, Study.Status.PAUSED):
            return _message(
                request, "This study is not open for answers at the moment.", status=409
            )
        existing = _cookie_participation(request, code)
        resuming = existing is not None and (
            who.worker_id is None or who.worker_id == existing.rater.external_id
        )
        response = render(
            request,
            "rater/join.html",
            {
                "experiment": experiment,
                "resuming": resuming,
                "preview": who.preview,
                "example": example_presentation(experiment=experiment) if who.preview else None,
                "query": request.GET.urlencode(),
            },
        )
        if identity.browser_id(request.COOKIES) is None:
            _set_cookie(response, identity.BROWSER_COOKIE, identity.new_browser_id())
        return response

    def post(self, request: HttpRequest, code: str) -> HttpResponse:
        try:
            experiment = self._experiment(code)
            who = identity.crowd_identity(request.GET)
        except ApplicationError as exc:
            return _error(request, exc)
        if who.source == Rater.Source.MTURK:
            return _join(request, code, experiment, who)
        return csrf_protect(_join)(request, code, experiment, who)


@method_decorator([never_cache, crowd_frameable], name="dispatch")
class TaskPageView(View):
    def get(self, request: HttpRequest, code: str) -> HttpResponse:
        session = _rater_session(request, code)
        participation = session.participation
        if participation is None:
            return _no_session(request, code, session)
        experiment = participation.experiment
        if (
            participation.status != Participation.Status.ACTIVE
            or experiment.study.status == Study.Status.CLOSED
        ):
            return redirect(_url("rater-done", code, session.url_token))
        return render(
            request,
            "rater/task.html",
            {
                "experiment": experiment,
                "code": code,
                "pairwise": experiment.is_pairwise,
                "min_viewing_ms": experiment.min_viewing_ms,
                "min_screen_width": experiment.min_screen_width,
                "token": identity.rater_token(code=code, participation_id=participation.pk),
            },
        )


@method_decorator([never_cache, crowd_frameable], name="dispatch")
class DoneView(View):
    """The end: what was stored, and the provider's way out (see ``recruitment.selectors``)."""

    def get(self, request: HttpRequest, code: str) -> HttpResponse:
        session = _rater_session(request, code)
        participation = session.participation
        if participation is None:
            return _no_session(request, code, session)
        end = participation_end(participation=participation)
        return render(
            request,
            "rater/done.html",
            {
                "end": end,
                "code": code,
                "finish": crowd_end(participation=participation, end=end),
                "task_url": _url("rater-task", code, session.url_token),
            },
        )
