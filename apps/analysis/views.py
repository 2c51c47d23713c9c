"""Researcher results page: every table and figure of one study, each file
downloadable, all of them as one zip. The analysis never runs in the request:
the page starts it in the background (``study_results_request``) and shows
"computing…" with an auto-refresh until it is done, with the newest finished
results meanwhile. ``?include_excluded=1`` shows the analysis with the raters
the quality rules exclude kept in.

Only those who may manage the study see it; to anyone else it is a 404. The
engine (pandas, matplotlib, SciPy) is imported inside the task and the
services, never at import time of this module: the URLconf imports it in
every web worker.

The files live in the ``results`` storage (local folder or S3): every file and
the zip are streamed from there, never read whole into memory."""

from __future__ import annotations

import csv
import io
import mimetypes
from pathlib import PurePosixPath

from django.contrib.admin.views.decorators import staff_member_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from apps.studies.models import Study
from apps.studies.permissions import can_manage_study
from apps.studies.selectors import experiment_progress

MAX_TABLE_ROWS = 200
REFRESH_SECONDS = 5


def _study(request: HttpRequest, slug: str) -> Study:
    study = Study.objects.select_related("family").filter(slug=slug).first()
    if study is None or not can_manage_study(request.user, study):
        raise Http404("No such study.")
    return study


def _include_excluded(request: HttpRequest) -> bool:
    return request.GET.get("include_excluded") == "1"


def _read_table(results, name: str) -> tuple[list[str], list[list[str]], int]:
    with io.TextIOWrapper(results.open(name), encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, [])
        rows: list[list[str]] = []
        total = 0
        for row in reader:
            total += 1
            if len(rows) < MAX_TABLE_ROWS:
                rows.append(row)
    return header, rows, total


@staff_member_required
def results_page(request: HttpRequest, slug: str) -> HttpResponse:
    from apps.analysis.services import excluded_rater_summary, study_results_request

    study = _study(request, slug)
    include = _include_excluded(request)
    state = study_results_request(study=study, include_excluded=include)
    context = {
        "study": study,
        "experiments": experiment_progress(study=study),
        "state": state,
        "run": state.run,
        "include_excluded": include,
        "flag": "?include_excluded=1" if include else "",
        "refresh_seconds": REFRESH_SECONDS if state.computing else None,
    }
    status = 200
    if state.run is not None and state.run.status == state.run.Status.FAILED:
        context["error"] = state.run.error
        status = 422
    results = state.results
    if results is not None:
        files = [PurePosixPath(name) for name in results.names]
        context["results"] = results
        context["exclusions"] = excluded_rater_summary(results=results)
        context["tables"] = [
            {"name": p.name, "data": _read_table(results, p.as_posix())}
            for p in files
            if p.suffix == ".csv" and p.name != "responses.csv"
        ]
        context["figures"] = [p.name for p in files if p.suffix == ".png"]
        context["others"] = [p.name for p in files if p.suffix in (".svg", ".md")]
    return render(request, "analysis/results.html", context, status=status)


def _finished(request: HttpRequest, study: Study):
    from apps.analysis.services import study_results_latest

    results = study_results_latest(study=study, include_excluded=_include_excluded(request))
    if results is None:
        raise Http404("No results yet.")
    return results


@staff_member_required
def results_file(request: HttpRequest, slug: str, name: str) -> FileResponse:
    results = _finished(request, _study(request, slug))
    by_name = {PurePosixPath(n).name: n for n in results.names}
    if name not in by_name:  # only files the analysis wrote; no paths from the URL
        raise Http404(f"No result file named {name}.")
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    as_attachment = request.GET.get("download") == "1"
    response = FileResponse(
        results.open(by_name[name]),
        content_type=content_type,
        as_attachment=as_attachment,
        filename=name,
    )
    response["Content-Length"] = results.size(by_name[name])
    return response


@staff_member_required
def results_zip(request: HttpRequest, slug: str) -> FileResponse:
    """Every file as one zip: built once per analysis into the storage, then streamed."""
    from apps.analysis import results_store

    study = _study(request, slug)
    results = _finished(request, study)
    name = results.zip_name()
    suffix = "-all-raters" if _include_excluded(request) else ""
    response = FileResponse(
        results_store.open_stream(name),
        content_type="application/zip",
        as_attachment=True,
        filename=f"{study.slug}-results{suffix}.zip",
    )
    response["Content-Length"] = results_store.results_storage().size(name)
    return response
