from django.urls import path, register_converter

from apps.studies import apis, preview_views, views


class ExperimentCode:
    """An experiment's public code: URL-safe base64, as ``models._public_code`` makes them.

    Anything else (too long, NUL bytes, other characters) is a plain 404 and
    never reaches a database query.
    """

    regex = "[A-Za-z0-9_-]{4,20}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(ExperimentCode, "code")

urlpatterns = [
    path("", views.home, name="home"),
    path("r/<code:code>/", views.JoinView.as_view(), name="rater-join"),
    path("r/<code:code>/task/", views.TaskPageView.as_view(), name="rater-task"),
    path("r/<code:code>/practice/", views.PracticeView.as_view(), name="rater-practice"),
    path("r/<code:code>/done/", views.DoneView.as_view(), name="rater-done"),
    path("r/<code:code>/preview/", preview_views.PreviewJoinView.as_view(), name="rater-preview"),
    path(
        "r/<code:code>/preview/practice/<int:number>/",
        preview_views.PreviewPracticeView.as_view(),
        name="rater-preview-practice",
    ),
    path(
        "r/<code:code>/preview/task/<int:number>/",
        preview_views.PreviewTaskView.as_view(),
        name="rater-preview-task",
    ),
    path(
        "r/<code:code>/preview/done/",
        preview_views.PreviewDoneView.as_view(),
        name="rater-preview-done",
    ),
    path("api/r/<code:code>/next", apis.AssignmentNextApi.as_view(), name="api-assignment-next"),
    path(
        "api/r/<code:code>/responses",
        apis.ResponseSubmitApi.as_view(),
        name="api-response-submit",
    ),
    path("api/r/<code:code>/heartbeat", apis.HeartbeatApi.as_view(), name="api-heartbeat"),
]
