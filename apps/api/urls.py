"""The researcher API, mounted at ``api/v1/`` (config/urls.py); names under ``api:``."""

from django.urls import path, re_path

from apps.api.apis import families, missing, raters, responses, results, studies

app_name = "api"

urlpatterns = [
    path("families/", families.FamilyListApi.as_view(), name="family-list"),
    path("families/<slug:slug>/", families.FamilyDetailApi.as_view(), name="family-detail"),
    path("studies/", studies.StudyListApi.as_view(), name="study-list"),
    path("studies/<slug:slug>/", studies.StudyDetailApi.as_view(), name="study-detail"),
    path("studies/<slug:slug>/launch/", studies.StudyLaunchApi.as_view(), name="study-launch"),
    path("studies/<slug:slug>/pause/", studies.StudyPauseApi.as_view(), name="study-pause"),
    path("studies/<slug:slug>/resume/", studies.StudyResumeApi.as_view(), name="study-resume"),
    path("studies/<slug:slug>/close/", studies.StudyCloseApi.as_view(), name="study-close"),
    path(
        "studies/<slug:slug>/progress/", studies.StudyProgressApi.as_view(), name="study-progress"
    ),
    path("studies/<slug:slug>/raters/", raters.StudyRaterListApi.as_view(), name="study-raters"),
    path(
        "studies/<slug:slug>/responses/",
        responses.StudyResponseListApi.as_view(),
        name="study-responses",
    ),
    path(
        "studies/<slug:slug>/responses.csv",
        responses.StudyResponsesCsvApi.as_view(),
        name="study-responses-csv",
    ),
    path(
        "studies/<slug:slug>/results/", results.StudyResultListApi.as_view(), name="study-results"
    ),
    path(
        "studies/<slug:slug>/results/<path:name>",
        results.StudyResultFileApi.as_view(),
        name="study-result-file",
    ),
    re_path(r"^", missing.MissingApi.as_view(), name="missing"),
]
