"""The live monitor: a standalone page and the JSON it polls every few seconds.

Staff only; a study the user may not see is a 404 (never a 403 that would
confirm it exists). The numbers come from :mod:`apps.studies.monitor`.
"""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from apps.studies.models import Study
from apps.studies.monitor import DEFAULT_RATER_LIMIT, study_monitor
from apps.studies.permissions import studies_visible_to

MAX_RATER_LIMIT = 5000


def _visible_study(request: HttpRequest, pk: int) -> Study:
    study = studies_visible_to(request.user).filter(pk=pk).first()
    if study is None:
        raise Http404("No such study.")
    return study


@staff_member_required
def monitor_page(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, "researcher/monitor.html", {"study": _visible_study(request, pk)})


@staff_member_required
def monitor_json(request: HttpRequest, pk: int) -> JsonResponse:
    study = _visible_study(request, pk)
    try:
        limit = int(request.GET.get("limit", DEFAULT_RATER_LIMIT))
    except ValueError:
        limit = DEFAULT_RATER_LIMIT
    only = request.GET.get("only", "")
    body = study_monitor(
        study=study,
        search=request.GET.get("q", "")[:64],
        experiment=request.GET.get("experiment", "")[:60],
        only=only if only in ("excluded", "flagged") else "",
        limit=min(max(limit, 0), MAX_RATER_LIMIT),
    )
    response = JsonResponse(body)
    response["Cache-Control"] = "no-store"
    return response
