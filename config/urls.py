from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from apps.core import health, metrics

urlpatterns = [
    # Probes and the Prometheus scrape; apps.core.middleware.ProbeMiddleware answers these
    # paths before the host check and sessions: the routes serve them without it.
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    # The researcher API, its OpenAPI schema and the Swagger UI (its assets served
    # from this site by drf-spectacular-sidecar: no CDN).
    path("api/v1/", include("apps.api.urls", namespace="api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's init script as a file: no inline script (CSP).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("apps.analysis.urls")),
    path("", include("apps.studies.monitor_urls")),
    path("", include("apps.studies.urls")),
]

if settings.SERVE_MEDIA:
    urlpatterns += [
        re_path(r"^media/(?P<path>.*)$", serve, {"document_root": settings.MEDIA_ROOT}),
    ]
