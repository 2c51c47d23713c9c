"""Rater JSON API: one view per operation, validate -> one service -> serialize."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.studies.models import Participation
from apps.studies.rater_session import require_participation
from apps.studies.selectors import assignment_presentation, participation_progress
from apps.studies.services import assignment_claim_next, response_submit


def next_payload(*, participation: Participation, code: str) -> dict:
    """The rater's current task (claimed if needed) or where to go when done."""
    assignment = assignment_claim_next(participation=participation)
    participation.refresh_from_db(fields=["answered", "target", "status"])
    progress = participation_progress(participation=participation)
    payload: dict = {
        "progress": {"answered": progress.answered, "target": progress.target},
        "done": assignment is None,
        "task": None,
        "done_url": f"/r/{code}/done/",
    }
    if assignment is not None:
        payload["task"] = assignment_presentation(assignment=assignment)
    return payload


class AssignmentNextApi(APIView):
    """GET the rater's current task; the same one until it is answered."""

    def get(self, request: Request, code: str) -> Response:
        participation = require_participation(request, code=code)
        return Response(next_payload(participation=participation, code=code))


class ResponseSubmitApi(APIView):
    """POST an answer to the current task; answers are stored exactly once."""

    class InputSerializer(serializers.Serializer):
        assignment_id = serializers.UUIDField()
        choice = serializers.IntegerField(min_value=0)
        response_ms = serializers.IntegerField(min_value=0, required=False, allow_null=True)

    class OutputSerializer(serializers.Serializer):
        answer_raw = serializers.CharField()
        submitted_at = serializers.DateTimeField()

    def post(self, request: Request, code: str) -> Response:
        participation = require_participation(request, code=code)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        response = response_submit(
            participation=participation,
            assignment_id=str(data.validated_data["assignment_id"]),
            choice=data.validated_data["choice"],
            response_ms=data.validated_data.get("response_ms"),
        )
        return Response(
            {
                "response": self.OutputSerializer(response).data,
                "next": next_payload(participation=participation, code=code),
            },
            status=201,
        )
