"""The raters of a study, one row per participation, with the quality figures the
quality pass stored (``Participation.quality``), the exclusion and its reasons."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from apps.api.base import (
    PageInput,
    ResearcherApi,
    error_responses,
    page_links,
    page_serializer,
    query_input,
)
from apps.api.selectors import participation_list, study_get
from apps.studies.models import Participation, Rater


class RaterFilterInput(PageInput):
    experiment = serializers.SlugField(
        required=False, help_text="Only this experiment's raters (its slug)."
    )
    excluded = serializers.BooleanField(
        required=False,
        allow_null=True,
        default=None,
        help_text="true: only raters the quality rules excluded; false: only the others.",
    )


class RaterOutput(serializers.Serializer):
    rater_id = serializers.UUIDField(source="rater.public_id", help_text="The public rater id.")
    source = serializers.ChoiceField(source="rater.source", choices=Rater.Source.choices)
    external_id = serializers.SerializerMethodField(
        help_text="The crowd worker id (Prolific, MTurk); null for a plain link."
    )
    experiment = serializers.SlugField(source="experiment.slug")
    status = serializers.ChoiceField(choices=Participation.Status.choices)
    answered = serializers.IntegerField()
    target = serializers.IntegerField()
    checks_answered = serializers.IntegerField()
    checks_planned = serializers.IntegerField()
    quality = serializers.DictField(
        help_text="The quality figures of the last quality pass (n_answers, median_ms, "
        "catch_accuracy, attention_accuracy, consistency, ...); empty before the first."
    )
    excluded_at = serializers.DateTimeField(allow_null=True)
    exclusion_reasons = serializers.CharField(
        help_text="The quality rules that excluded the rater, ';'-separated."
    )
    joined_at = serializers.DateTimeField(source="created_at")
    completed_at = serializers.DateTimeField(allow_null=True)

    def get_external_id(self, participation: Participation) -> str | None:
        rater = participation.rater
        # A plain link's external id is a hash of the browser: not an id anyone can use.
        return None if rater.source == Rater.Source.LINK else rater.external_id


RaterPageOutput = page_serializer("RaterPage", RaterOutput, count=True)


class StudyRaterListApi(ResearcherApi):
    @extend_schema(
        operation_id="studies_raters",
        summary="The study's raters (one row per participation) with their quality",
        parameters=[RaterFilterInput],
        responses={200: RaterPageOutput, **error_responses(400, 404)},
    )
    def get(self, request: Request, slug: str) -> Response:
        study = study_get(user=request.user, slug=slug)
        data = query_input(RaterFilterInput, request)
        limit, offset = data["limit"], data["offset"]
        rows = participation_list(
            study=study, experiment=data.get("experiment"), excluded=data.get("excluded")
        )
        count = rows.count()
        page = list(rows[offset : offset + limit])
        payload = {
            "count": count,
            **page_links(request, limit=limit, offset=offset, has_next=offset + limit < count),
            "results": page,
        }
        return Response(RaterPageOutput(payload).data)
