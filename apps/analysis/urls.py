from django.urls import path

from apps.analysis import views

urlpatterns = [
    path("studies/<slug:slug>/results/", views.results_page, name="study-results"),
    path("studies/<slug:slug>/results.zip", views.results_zip, name="study-results-zip"),
    path("studies/<slug:slug>/results/<str:name>", views.results_file, name="study-results-file"),
]
