"""The files of a study's analysis (tables, figures, the report), listed and downloaded.

Read-only: ``study_results_latest`` is the newest *finished* analysis of the
study (the results page starts the runs, off the request, see
``apps.analysis.services.study_results_request``); until one has finished both
views are a 404. ``n_answers`` says which state of the answers it covers.
Only files the analysis wrote are served: a name is looked up among them,
never joined to a path.
"""

from __future__ import annotations

import mimetypes
from pathlib import PurePosixPath

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse

from apps.api.base import FileApi, ResearcherApi, error_responses
from apps.api.selectors import study_get_managed
from apps.core.exceptions import NotFoundError
from apps.studies.models import Study


def _results(study: Study):
    """The study's newest finished ``StudyResults``; a 404 while none has been computed."""
    from apps.analysis.services import study_results_latest  # pandas & co.: on first use only

    results = study_results_latest(study=study)
    if results is None:
        raise NotFoundError(
            f"No results for study '{study.slug}' yet: the analysis has not been computed "
            "(it starts when the study has answers and its results page is opened).",
            code="no_results",
        )
    return results


def _by_name(results) -> dict[str, str]:
    """Name shown -> name inside the results folder (the ``results`` storage; streamed)."""
    return {name: name for name in results.names}


class ResultFileOutput(serializers.Serializer):
    name = serializers.CharField(help_text="Path inside the results folder.")
    size = serializers.IntegerField(help_text="Bytes.")
    url = serializers.URLField(help_text="Where to download it.")


class ResultsOutput(serializers.Serializer):
    study = serializers.SlugField()
    n_answers = serializers.IntegerField(help_text="The answers this analysis covers.")
    files = ResultFileOutput(many=True)


class StudyResultListApi(ResearcherApi):
    @extend_schema(
        operation_id="studies_results",
        summary="The files of the study's newest finished analysis",
        responses={200: ResultsOutput, **error_responses(404)},
    )
    def get(self, request: Request, slug: str) -> Response:
        study = study_get_managed(user=request.user, slug=slug)
        results = _results(study)
        files = [
            {
                "name": name,
                "size": results.size(path),
                "url": reverse(
                    "api:study-result-file", kwargs={"slug": slug, "name": name}, request=request
                ),
            }
            for name, path in _by_name(results).items()
        ]
        return Response(
            ResultsOutput(
                {"study": study.slug, "n_answers": results.n_answers, "files": files}
            ).data
        )


class StudyResultFileApi(FileApi):
    @extend_schema(
        operation_id="studies_results_file",
        summary="Download one file of the study's analysis",
        responses={
            (200, "application/octet-stream"): OpenApiResponse(
                OpenApiTypes.BINARY, description="The file (CSV, PNG, SVG, Markdown)."
            ),
            **error_responses(404),
        },
    )
    def get(self, request: Request, slug: str, name: str) -> FileResponse:
        study = study_get_managed(user=request.user, slug=slug)
        results = _results(study)
        path = _by_name(results).get(name)
        if path is None:
            raise NotFoundError(
                f"The results of study '{study.slug}' have no file named '{name}'.",
                code="not_found",
            )
        return FileResponse(
            results.open(path),
            content_type=mimetypes.guess_type(name)[0] or "application/octet-stream",
            as_attachment=True,
            filename=PurePosixPath(path).name,
        )
