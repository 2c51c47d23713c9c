"""Rater JSON API: one view per operation, validate -> one service -> serialize.

Authenticated by the signed rater token in the ``X-Rater-Token`` header (see
:mod:`apps.studies.identity`): no session lookup, no CSRF cookie. Paths and
payloads are those of the first version, extended: ``state``,
``retry_after``, ``message`` and ``heartbeat_s`` in the next payload, the
``late``/``over_quota`` flags on a stored answer, and ``…/heartbeat``.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.exceptions import ApplicationError
from apps.studies.identity import TOKEN_HEADER, participation_id_from_token
from apps.studies.selectors import assignment_presentation
from apps.studies.services import (
    NextStep,
    State,
    assignment_heartbeat,
    assignment_next,
    response_submit,
)
from apps.studies.services.answers import RESPONSE_MS_MAX

MESSAGES = {
    State.WAIT: "Every task left for you is being answered by someone else right now. "
    "This page checks again in a few seconds; please keep it open.",
    State.PAUSED: "The researchers have paused this study for a moment. "
    "This page continues by itself when it resumes; please keep it open.",
    State.CLOSED: "This study has been closed. Thank you for your time.",
}


def next_payload(step: NextStep, *, code: str) -> dict[str, Any]:
    """The rater's next step as the task page reads it."""
    participation = step.participation
    payload: dict[str, Any] = {
        "state": step.state.value,
        "done": step.state in (State.DONE, State.CLOSED),
        "progress": {"answered": participation.answered, "target": participation.target},
        "task": None,
        "retry_after": step.retry_after,
        "message": MESSAGES.get(step.state),
        "done_url": f"/r/{code}/done/",
    }
    if step.assignment is not None:
        payload["task"] = assignment_presentation(
            assignment=step.assignment, experiment=participation.experiment
        )
        payload["heartbeat_s"] = max(participation.experiment.lease_seconds // 3, 5)
    return payload


def _participation_id(request: Request, code: str) -> int:
    participation_id = participation_id_from_token(request.META.get(TOKEN_HEADER), code=code)
    if participation_id is None:
        raise ApplicationError(
            "Your session has ended. Open the study link again to continue.",
            code="no_session",
            status_code=403,
        )
    return participation_id


class RaterApi(APIView):
    """Token-authenticated, JSON only; CSRF does not apply (no cookie is used)."""

    authentication_classes = ()
    permission_classes = (AllowAny,)
    parser_classes = (JSONParser,)


class AssignmentNextApi(RaterApi):
    """GET the rater's current task (the same one until it is answered) or where to go."""

    def get(self, request: Request, code: str) -> Response:
        step = assignment_next(participation_id=_participation_id(request, code))
        return Response(next_payload(step, code=code))


class ResponseSubmitApi(RaterApi):
    """POST an answer: 201 stored, 200 the same answer was already stored."""

    class InputSerializer(serializers.Serializer):
        assignment_id = serializers.UUIDField()
        choice = serializers.IntegerField(min_value=0, max_value=1000)
        response_ms = serializers.IntegerField(
            min_value=0, max_value=RESPONSE_MS_MAX, required=False, allow_null=True
        )

    class OutputSerializer(serializers.Serializer):
        answer_raw = serializers.CharField()
        submitted_at = serializers.DateTimeField()
        late = serializers.BooleanField()
        over_quota = serializers.BooleanField()

    def post(self, request: Request, code: str) -> Response:
        participation_id = _participation_id(request, code)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        outcome = response_submit(
            participation_id=participation_id,
            assignment_id=str(data.validated_data["assignment_id"]),
            choice=data.validated_data["choice"],
            response_ms=data.validated_data.get("response_ms"),
        )
        return Response(
            {
                "response": self.OutputSerializer(outcome.response).data,
                "next": next_payload(outcome.next, code=code),
            },
            status=201 if outcome.created else 200,
        )


class HeartbeatApi(RaterApi):
    """POST while the rater is on a task: keeps their lease on it alive."""

    class InputSerializer(serializers.Serializer):
        assignment_id = serializers.UUIDField()

    def post(self, request: Request, code: str) -> Response:
        participation_id = _participation_id(request, code)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        expires = assignment_heartbeat(
            participation_id=participation_id,
            assignment_id=str(data.validated_data["assignment_id"]),
        )
        return Response(
            {
                "held": expires is not None,
                "lease_expires_at": expires.isoformat() if expires else None,
            }
        )
