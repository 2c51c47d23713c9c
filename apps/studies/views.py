"""Rater HTML pages: join (instructions), the task page, the completion page.

The task page is a shell; ``frontend/static/rater/task.js`` drives it through
the JSON API in ``apis.py``. Crowd sources are recognised from the link's
query string: Prolific (``PROLIFIC_PID``, ``STUDY_ID``, ``SESSION_ID``) and
MTurk (``workerId``, ``assignmentId``, ``hitId``); otherwise a plain link.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import ensure_csrf_cookie

from apps.core.exceptions import ApplicationError
from apps.studies.models import Participation, Rater, Study
from apps.studies.rater_session import participation_from_session, remember_participation
from apps.studies.services import experiment_by_code, rater_join

PROLIFIC_KEYS = ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID")
MTURK_KEYS = ("workerId", "assignmentId", "hitId")


def crowd_identity(query) -> tuple[str, str | None, dict[str, str]]:
    if query.get("PROLIFIC_PID"):
        return (
            Rater.Source.PROLIFIC,
            query["PROLIFIC_PID"],
            {k: query[k] for k in PROLIFIC_KEYS if k in query},
        )
    if query.get("workerId"):
        return (
            Rater.Source.MTURK,
            query["workerId"],
            {k: query[k] for k in MTURK_KEYS if k in query},
        )
    return Rater.Source.LINK, None, {}


def _error(request: HttpRequest, exc: ApplicationError) -> HttpResponse:
    return render(request, "rater/message.html", {"message": exc.message}, status=exc.status_code)


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


class JoinView(View):
    def get(self, request: HttpRequest, code: str) -> HttpResponse:
        try:
            experiment = experiment_by_code(code=code)
        except ApplicationError as exc:
            return _error(request, exc)
        if experiment.study.status != Study.Status.LIVE:
            return render(
                request,
                "rater/message.html",
                {"message": "This study is not open for answers at the moment."},
                status=409,
            )
        existing = participation_from_session(request, code=code)
        return render(
            request,
            "rater/join.html",
            {
                "experiment": experiment,
                "resuming": existing is not None,
                "query": request.GET.urlencode(),
            },
        )

    def post(self, request: HttpRequest, code: str) -> HttpResponse:
        try:
            experiment = experiment_by_code(code=code)
            if participation_from_session(request, code=code) is None:
                source, external_id, session = crowd_identity(request.GET)
                participation = rater_join(
                    experiment=experiment,
                    source=source,
                    external_id=external_id,
                    external_session=session,
                )
                remember_participation(request, code=code, participation=participation)
        except ApplicationError as exc:
            return _error(request, exc)
        return redirect("rater-task", code=code)


@method_decorator(ensure_csrf_cookie, name="dispatch")
class TaskPageView(View):
    def get(self, request: HttpRequest, code: str) -> HttpResponse:
        participation = participation_from_session(request, code=code)
        if participation is None:
            return redirect("rater-join", code=code)
        if participation.status != Participation.Status.ACTIVE:
            return redirect("rater-done", code=code)
        experiment = participation.experiment
        return render(
            request,
            "rater/task.html",
            {"experiment": experiment, "code": code, "pairwise": experiment.is_pairwise},
        )


class DoneView(View):
    def get(self, request: HttpRequest, code: str) -> HttpResponse:
        participation = participation_from_session(request, code=code)
        if participation is None:
            return redirect("rater-join", code=code)
        return render(request, "rater/done.html", {"participation": participation})
