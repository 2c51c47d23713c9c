"""URLs of the live monitor (included from ``config/urls.py``)."""

from django.urls import path

from apps.studies import monitor_views

urlpatterns = [
    path(
        "researcher/studies/<int:pk>/monitor/",
        monitor_views.monitor_page,
        name="researcher-monitor",
    ),
    path(
        "researcher/studies/<int:pk>/monitor.json",
        monitor_views.monitor_json,
        name="researcher-monitor-json",
    ),
]
