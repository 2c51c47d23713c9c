"""A study's answers: the response CSV streamed, or the same rows as JSON pages.

Both come from :mod:`apps.studies.exports` (``response_csv_lines`` and
``response_rows``): the JSON keys are the CSV columns
(:data:`apps.studies.csv_contract.RESPONSE_COLUMNS`), the values the CSV's
strings. Pages are limit/offset over the export's order (oldest first); an
offset skips rows in the stream, so for a whole large study prefer the CSV.
"""

from __future__ import annotations

from itertools import islice

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from apps.api.base import (
    FileApi,
    PageInput,
    ResearcherApi,
    error_responses,
    page_links,
    page_serializer,
    query_input,
)
from apps.api.selectors import study_get_managed
from apps.studies.csv_contract import RESPONSE_COLUMNS
from apps.studies.exports import iter_lines, response_csv_lines, response_rows

ResponseRowOutput = type(
    "ResponseRowOutput",
    (serializers.Serializer,),
    {
        "__doc__": "One answer: the response CSV's columns, as the CSV's strings "
        "(README 'Response CSV').",
        **{name: serializers.CharField(allow_blank=True) for name in RESPONSE_COLUMNS},
    },
)
ResponsePageOutput = page_serializer("ResponsePage", ResponseRowOutput, count=False)


class StudyResponsesCsvApi(FileApi):
    @extend_schema(
        operation_id="studies_responses_csv",
        summary="Every answer as the response CSV (streamed)",
        responses={
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR, description="The response CSV, header first."
            ),
            **error_responses(404),
        },
    )
    def get(self, request: Request, slug: str) -> StreamingHttpResponse:
        study = study_get_managed(user=request.user, slug=slug)
        response = StreamingHttpResponse(
            iter_lines(response_csv_lines(study=study)), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="{study.slug}-responses.csv"'
        return response


class StudyResponseListApi(ResearcherApi):
    @extend_schema(
        operation_id="studies_responses",
        summary="Every answer as JSON, a page at a time (keys: the CSV columns)",
        parameters=[PageInput],
        responses={200: ResponsePageOutput, **error_responses(400, 404)},
    )
    def get(self, request: Request, slug: str) -> Response:
        study = study_get_managed(user=request.user, slug=slug)
        data = query_input(PageInput, request)
        limit, offset = data["limit"], data["offset"]
        rows = list(islice(response_rows(study=study), offset, offset + limit + 1))
        payload = {
            **page_links(request, limit=limit, offset=offset, has_next=len(rows) > limit),
            "results": [dict(zip(RESPONSE_COLUMNS, row, strict=True)) for row in rows[:limit]],
        }
        return Response(ResponsePageOutput(payload).data)
