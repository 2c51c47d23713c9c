"""Researcher results page: every table and figure of one study, each file
downloadable, all of them as one zip. Works while the study is running: the
analysis reruns when new answers have come in (see ``study_results``).

The engine (pandas, matplotlib, SciPy) is imported inside the views, on the
first results page: the URLconf imports this module in every web worker,
and the workers that serve raters should not pay seconds of imports and
tens of megabytes for a page they never show."""

from __future__ import annotations

import csv
import mimetypes

from django.contrib.admin.views.decorators import staff_member_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from apps.studies.models import Study
from apps.studies.selectors import experiment_progress

MAX_TABLE_ROWS = 200


def _engine():
    from apps.analysis import engine

    return engine


def study_results(*, study: Study):
    from apps.analysis.services import study_results as results

    return results(study=study)


def _study(slug: str) -> Study:
    return get_object_or_404(Study.objects.select_related("family"), slug=slug)


def _read_table(path) -> tuple[list[str], list[list[str]], int]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, [])
        rows = []
        total = 0
        for row in reader:
            total += 1
            if len(rows) < MAX_TABLE_ROWS:
                rows.append(row)
    return header, rows, total


@staff_member_required
def results_page(request: HttpRequest, slug: str) -> HttpResponse:
    study = _study(slug)
    context = {"study": study, "experiments": experiment_progress(study=study)}
    try:
        results = study_results(study=study)
    except _engine().AnalysisInputError as exc:
        context["error"] = str(exc)
        return render(request, "analysis/results.html", context, status=422)
    if results is not None:
        files = results.files
        context["results"] = results
        context["tables"] = [
            {"name": p.name, "data": _read_table(p)}
            for p in files
            if p.suffix == ".csv" and p.name != "responses.csv"
        ]
        context["figures"] = [p.name for p in files if p.suffix == ".png"]
        context["others"] = [p.name for p in files if p.suffix in (".svg", ".md")]
    return render(request, "analysis/results.html", context)


@staff_member_required
def results_file(request: HttpRequest, slug: str, name: str) -> FileResponse:
    results = study_results(study=_study(slug))
    if results is None:
        raise Http404("No results yet.")
    by_name = {p.name: p for p in results.files}
    if name not in by_name:  # only files the analysis wrote; no paths from the URL
        raise Http404(f"No result file named {name}.")
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    as_attachment = request.GET.get("download") == "1"
    return FileResponse(
        by_name[name].open("rb"),
        content_type=content_type,
        as_attachment=as_attachment,
        filename=name,
    )


@staff_member_required
def results_zip(request: HttpRequest, slug: str) -> HttpResponse:
    study = _study(slug)
    results = study_results(study=study)
    if results is None:
        raise Http404("No results yet.")
    response = HttpResponse(_engine().write_zip(results.out_dir), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{study.slug}-results.zip"'
    return response
