from django.urls import path

from apps.studies import apis, views

urlpatterns = [
    path("", views.home, name="home"),
    path("r/<str:code>/", views.JoinView.as_view(), name="rater-join"),
    path("r/<str:code>/task/", views.TaskPageView.as_view(), name="rater-task"),
    path("r/<str:code>/done/", views.DoneView.as_view(), name="rater-done"),
    path("api/r/<str:code>/next", apis.AssignmentNextApi.as_view(), name="api-assignment-next"),
    path(
        "api/r/<str:code>/responses", apis.ResponseSubmitApi.as_view(), name="api-response-submit"
    ),
]
