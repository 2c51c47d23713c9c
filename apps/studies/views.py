"""Rater HTML pages: join (instructions), the task page, the end page.

The task page is a shell; ``frontend/static/rater/task.js`` drives it through
the JSON API in ``apis.py`` with the signed rater token the page carries.
Which participation a browser is on in an experiment is the ``xr_<code>``
cookie; the browser itself is the ``xai_b`` cookie (see ``identity``).
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import never_cache

from apps.core.exceptions import ApplicationError
from apps.studies import identity
from apps.studies.models import Experiment, Participation, Study
from apps.studies.selectors import participation_end
from apps.studies.services import experiment_by_code, rater_join


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


def _cookie_participation(request: HttpRequest, code: str) -> Participation | None:
    """The participation this browser is on in experiment ``code``, if it is really its own."""
    token = request.COOKIES.get(identity.participation_cookie(code))
    participation_id = identity.participation_id_from_token(token, code=code)
    browser = identity.browser_id(request.COOKIES)
    if participation_id is None or browser is None:
        return None
    participation = (
        Participation.objects.select_related("experiment__study", "rater")
        .filter(pk=participation_id)
        .first()
    )
    if participation is None or participation.browser_hash != identity.browser_hash(browser):
        return None
    return participation


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


@method_decorator(never_cache, name="dispatch")
class JoinView(View):
    def _experiment(self, code: str) -> Experiment:
        return experiment_by_code(code=code)

    def get(self, request: HttpRequest, code: str) -> HttpResponse:
        try:
            experiment = self._experiment(code)
            who = identity.crowd_identity(request.GET)
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
                "query": request.GET.urlencode(),
            },
        )
        if identity.browser_id(request.COOKIES) is None:
            _set_cookie(response, identity.BROWSER_COOKIE, identity.new_browser_id())
        return response

    def post(self, request: HttpRequest, code: str) -> HttpResponse:
        browser = identity.browser_id(request.COOKIES) or identity.new_browser_id()
        try:
            experiment = self._experiment(code)
            participation = rater_join(
                experiment=experiment,
                identity=identity.crowd_identity(request.GET),
                browser=browser,
                ip=identity.client_ip(request.META),
            )
        except ApplicationError as exc:
            return _error(request, exc)
        response = redirect("rater-task", code=code)
        _set_cookie(response, identity.BROWSER_COOKIE, browser)
        _set_cookie(
            response,
            identity.participation_cookie(code),
            identity.rater_token(code=code, participation_id=participation.pk),
        )
        return response


@method_decorator(never_cache, name="dispatch")
class TaskPageView(View):
    def get(self, request: HttpRequest, code: str) -> HttpResponse:
        participation = _cookie_participation(request, code)
        if participation is None:
            return redirect("rater-join", code=code)
        experiment = participation.experiment
        if (
            participation.status != Participation.Status.ACTIVE
            or experiment.study.status == Study.Status.CLOSED
        ):
            return redirect("rater-done", code=code)
        return render(
            request,
            "rater/task.html",
            {
                "experiment": experiment,
                "code": code,
                "pairwise": experiment.is_pairwise,
                "token": identity.rater_token(code=code, participation_id=participation.pk),
            },
        )


@method_decorator(never_cache, name="dispatch")
class DoneView(View):
    def get(self, request: HttpRequest, code: str) -> HttpResponse:
        participation = _cookie_participation(request, code)
        if participation is None:
            return redirect("rater-join", code=code)
        return render(
            request,
            "rater/done.html",
            {"end": participation_end(participation=participation), "code": code},
        )
