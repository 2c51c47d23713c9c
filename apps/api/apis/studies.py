"""Studies: list, detail, the life-cycle actions (launch, pause, resume, close), progress.

Each action calls its service in :mod:`apps.studies.services`; a transition the
service refuses comes back as its 409 (``ConflictError``) with its message.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from apps.api.base import ResearcherApi, error_responses
from apps.api.selectors import study_get, study_get_managed, study_list
from apps.studies.models import Experiment, Study
from apps.studies.selectors import experiment_progress
from apps.studies.services import study_close, study_launch, study_pause, study_resume


class ExperimentOutput(serializers.Serializer):
    slug = serializers.SlugField()
    name = serializers.CharField()
    position = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=Experiment.Kind.choices)
    scale_points = serializers.IntegerField(allow_null=True)
    stimulus_kind = serializers.CharField()
    method = serializers.CharField()
    conditions = serializers.ListField(child=serializers.CharField())
    pairs = serializers.ListField(child=serializers.ListField(child=serializers.CharField()))
    images_per_class = serializers.IntegerField()
    answers_per_task = serializers.IntegerField()
    tasks_per_rater = serializers.IntegerField()
    code = serializers.CharField(help_text="The public code in the rater link.")
    rater_url = serializers.SerializerMethodField(help_text="The plain rater link.")

    def get_rater_url(self, experiment: Experiment) -> str:
        return f"{settings.PUBLIC_BASE_URL}/r/{experiment.code}/"


class StudyOutput(serializers.Serializer):
    slug = serializers.SlugField()
    name = serializers.CharField()
    description = serializers.CharField()
    status = serializers.ChoiceField(choices=Study.Status.choices)
    family = serializers.SlugField(source="family.slug")
    owner = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    launched_at = serializers.DateTimeField(allow_null=True)
    closed_at = serializers.DateTimeField(allow_null=True)


class StudyDetailOutput(StudyOutput):
    experiments = ExperimentOutput(many=True, source="experiments.all")


class StudyListApi(ResearcherApi):
    @extend_schema(
        operation_id="studies_list",
        summary="The studies you own, share or (superuser) all studies",
        responses={200: StudyOutput(many=True), **error_responses()},
    )
    def get(self, request: Request) -> Response:
        return Response(StudyOutput(study_list(user=request.user), many=True).data)


class StudyDetailApi(ResearcherApi):
    @extend_schema(
        operation_id="studies_detail",
        summary="One study with its experiments",
        responses={200: StudyDetailOutput, **error_responses(404)},
    )
    def get(self, request: Request, slug: str) -> Response:
        return Response(StudyDetailOutput(study_get(user=request.user, slug=slug)).data)


class _StudyActionApi(ResearcherApi):
    """POST, no body: run the service on the study, answer the study as it is now."""

    service: Callable[..., Study]

    def post(self, request: Request, slug: str) -> Response:
        study = study_get_managed(user=request.user, slug=slug)
        self.service(study=study)
        return Response(StudyDetailOutput(study_get(user=request.user, slug=slug)).data)


def _action_schema(verb: str, summary: str):
    return extend_schema_view(
        post=extend_schema(
            operation_id=f"studies_{verb}",
            summary=summary,
            request=None,
            responses={200: StudyDetailOutput, **error_responses(400, 404, 409)},
        )
    )


@_action_schema("launch", "Generate the tasks and open the study to raters (idempotent)")
class StudyLaunchApi(_StudyActionApi):
    service = staticmethod(study_launch)


@_action_schema("pause", "Stop handing out tasks (answers on screen are still stored)")
class StudyPauseApi(_StudyActionApi):
    service = staticmethod(study_pause)


@_action_schema("resume", "Hand out tasks again after a pause")
class StudyResumeApi(_StudyActionApi):
    service = staticmethod(study_resume)


@_action_schema("close", "Close the study for good")
class StudyCloseApi(_StudyActionApi):
    service = staticmethod(study_close)


class ExperimentProgressOutput(serializers.Serializer):
    experiment = serializers.SlugField(source="experiment.slug")
    name = serializers.CharField(source="experiment.name")
    n_tasks = serializers.IntegerField()
    n_tasks_complete = serializers.IntegerField()
    n_answers = serializers.IntegerField(help_text="In-quota answers (filled slots).")
    n_slots = serializers.IntegerField(help_text="Tasks x quota: the answers asked for.")
    n_leased = serializers.IntegerField(help_text="Tasks on a rater's screen right now.")
    n_late = serializers.IntegerField(help_text="Answers after their lease ran out.")
    n_over_quota = serializers.IntegerField(help_text="Late answers kept outside the quota.")


class StudyProgressOutput(serializers.Serializer):
    study = serializers.SlugField()
    status = serializers.ChoiceField(choices=Study.Status.choices)
    experiments = ExperimentProgressOutput(many=True)


class StudyProgressApi(ResearcherApi):
    @extend_schema(
        operation_id="studies_progress",
        summary="Per experiment: tasks, complete tasks, answers, leases, late answers",
        responses={200: StudyProgressOutput, **error_responses(404)},
    )
    def get(self, request: Request, slug: str) -> Response:
        study = study_get(user=request.user, slug=slug)
        rows = experiment_progress(study=study)
        return Response(
            StudyProgressOutput(
                {"study": study.slug, "status": study.status, "experiments": rows}
            ).data
        )
