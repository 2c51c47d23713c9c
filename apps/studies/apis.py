"""Rater JSON API: one view per operation, validate -> one service -> serialize.

Authenticated by the signed rater token in the ``X-Rater-Token`` header (see
:mod:`apps.studies.identity`): no session lookup, no CSRF cookie. Paths and
payloads are those of the first version, extended: ``state``,
``retry_after``, ``message`` and ``heartbeat_s`` in the next payload, the
``late``/``over_quota`` flags on a stored answer, and ``…/heartbeat``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rest_framework import serializers
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.exceptions import ApplicationError
from apps.studies.identity import TOKEN_HEADER, participation_id_from_token
from apps.studies.selectors import assignment_presentation, check_presentation
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
        # Checks (attention, probes) count as tasks for the rater: a probe must not
        # stand out by leaving the progress where it was.
        "progress": {
            "answered": participation.answered + participation.checks_answered,
            "target": participation.target + participation.checks_planned,
        },
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
    elif step.check is not None:
        payload["task"] = check_presentation(item=step.check, experiment=participation.experiment)
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
    renderer_classes = (JSONRenderer,)

    def perform_content_negotiation(self, request, force=False):
        """JSON, whatever the Accept header says: nothing to negotiate (saves the
        header parsing on every answer)."""
        renderer = self.renderer_classes[0]()
        return renderer, renderer.media_type


class AssignmentNextApi(RaterApi):
    """GET the rater's current task (the same one until it is answered) or where to go."""

    def get(self, request: Request, code: str) -> Response:
        step = assignment_next(participation_id=_participation_id(request, code))
        return Response(next_payload(step, code=code))


@dataclass(frozen=True)
class Field:
    """One input field of the rater API: a UUID, or an integer in [low, high]."""

    kind: type
    required: bool = True
    low: int | None = None
    high: int | None = None

    def parse(self, value: Any) -> Any:
        """The value, or ``ValueError`` with the message the rater's page shows."""
        if self.kind is uuid.UUID:
            try:
                if not isinstance(value, str) or len(value) > 36:
                    raise ValueError
                return str(uuid.UUID(value))
            except ValueError:
                raise ValueError("Must be a valid UUID.") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("A valid integer is required.")
        if self.low is not None and value < self.low:
            raise ValueError(f"Ensure this value is greater than or equal to {self.low}.")
        if self.high is not None and value > self.high:
            raise ValueError(f"Ensure this value is less than or equal to {self.high}.")
        return value


def validated(data: Any, fields: dict[str, Field]) -> dict[str, Any]:
    """The rater API's input, checked field by field; a 400 naming every bad field.

    The same checks and error body as a DRF ``Serializer`` (``ValidationError``
    with one message list per field), without building one per request: on
    the answer request that was a tenth of the server's Python time. Unknown
    keys are ignored, as a serializer does.
    """
    if not isinstance(data, dict):
        raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]})
    out: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name, field in fields.items():
        value = data.get(name)
        if value is None:
            if field.required:
                errors[name] = ["This field is required."]
            else:
                out[name] = None
            continue
        try:
            out[name] = field.parse(value)
        except ValueError as exc:
            errors[name] = [str(exc)]
    if errors:
        raise serializers.ValidationError(errors)
    return out


def _utc_iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class ResponseSubmitApi(RaterApi):
    """POST an answer: 201 stored, 200 the same answer was already stored."""

    INPUT = {
        "assignment_id": Field(uuid.UUID),
        "choice": Field(int, low=0, high=1000),
        "response_ms": Field(int, required=False, low=0, high=RESPONSE_MS_MAX),
    }

    def post(self, request: Request, code: str) -> Response:
        participation_id = _participation_id(request, code)
        data = validated(request.data, self.INPUT)
        outcome = response_submit(participation_id=participation_id, **data)
        stored = outcome.response
        return Response(
            {
                "response": {
                    "answer_raw": stored.answer_raw,
                    "submitted_at": _utc_iso(stored.submitted_at),
                    "late": getattr(stored, "late", False),
                    "over_quota": getattr(stored, "over_quota", False),
                },
                "next": next_payload(outcome.next, code=code),
            },
            status=201 if outcome.created else 200,
        )


class HeartbeatApi(RaterApi):
    """POST while the rater is on a task: keeps their lease on it alive."""

    INPUT = {"assignment_id": Field(uuid.UUID)}

    def post(self, request: Request, code: str) -> Response:
        participation_id = _participation_id(request, code)
        data = validated(request.data, self.INPUT)
        expires = assignment_heartbeat(participation_id=participation_id, **data)
        return Response(
            {
                "held": expires is not None,
                "lease_expires_at": expires.isoformat() if expires else None,
            }
        )
