"""Settings, read from the environment, with defaults that run on a laptop.

Laptop defaults: SQLite file under ``var/``, Celery eager (tasks run in the
web process), media files under ``var/media``. ``DEBUG`` is off unless the
environment says ``DEBUG=1`` (the Makefile's laptop targets and the test suite
do); with it off ``SECRET_KEY`` is mandatory and HTTPS is assumed (see the
"HTTP security" block). Production should provide ``DATABASE_URL`` (PostgreSQL
via psycopg 3) and ``CELERY_BROKER_URL`` (Redis); see deploy/env.sample.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url

from apps.core.logs import logging_config
from config.env import (
    ImproperlyConfiguredEnv,
    env_bool,
    env_int,
    env_list,
    env_required,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("XAI_VAR_DIR", str(BASE_DIR / "var")) or BASE_DIR / "var")

# Off unless set: a server started without DEBUG=1 never shows tracebacks to the world.
DEBUG = env_bool("DEBUG", False)
if DEBUG:
    SECRET_KEY = env_str("SECRET_KEY") or "insecure-laptop-only-key-never-use-in-production"
else:
    SECRET_KEY = env_required(
        "SECRET_KEY",
        why=(
            "it signs rater sessions and must be secret when DEBUG is off "
            "(DEBUG is off unless set; on a laptop run with DEBUG=1, as the Makefile does)"
        ),
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# Public base URL used in printed and published rater links.
PUBLIC_BASE_URL = (env_str("PUBLIC_BASE_URL", "http://127.0.0.1:8000") or "").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_prometheus",
    "apps.core",
    "apps.pipeline",
    "apps.studies",
    "apps.analysis",
    "apps.recruitment",
    "apps.api",
]

MIDDLEWARE = [
    # First and last: request counts and latencies for Prometheus (apps.core.metrics).
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    # The request id on every log line and in the X-Request-ID header (apps.core.logs).
    "apps.core.middleware.RequestIdMiddleware",
    # /healthz, /readyz, /metrics: answered before host checks, redirects, sessions, CSRF.
    "apps.core.middleware.ProbeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "apps.core.security.ContentSecurityPolicyMiddleware",
    # Before sessions and CSRF: a throttled admin sign-in stops here (apps.core.throttle).
    "apps.core.throttle.AdminLoginThrottleMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "apps.core.middleware.PlanModeMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]
# Pages whose database statements all have an index to use (the rater loop):
# planned with sequential scans off (apps.core.rawsql.plan_with_indexes_only).
INDEX_PLAN_PATHS = ("/api/r/", "/r/")

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "frontend" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

_DATABASE_URL = env_str("DATABASE_URL")
if not _DATABASE_URL:
    VAR_DIR.mkdir(parents=True, exist_ok=True)  # the laptop SQLite file lives here
DATABASES = {
    "default": dj_database_url.parse(
        _DATABASE_URL or f"sqlite:///{VAR_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
        # A persistent connection is pinged before reuse: one PostgreSQL restart costs
        # each process a reconnect, not a burst of 500s from dead sockets.
        conn_health_checks=env_bool("DB_CONN_HEALTH_CHECKS", True),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Rater answers arrive concurrently; wait for the write lock instead of failing.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
elif env_bool("DB_SERVER_SIDE_BINDING", True):
    # psycopg 3 binds parameters on the server and prepares a statement the
    # fifth time a connection runs it: the rater loop's few statements are
    # then parsed and planned once per connection, not once per request.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        server_side_binding=True, prepare_threshold=env_int("DB_PREPARE_THRESHOLD", 5)
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "static")) or VAR_DIR / "static")
STATICFILES_DIRS = [BASE_DIR / "frontend" / "static"]
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")) or VAR_DIR / "media")
# Where pipeline jobs keep checkpoints and intermediate files (never served).
# With STORAGE_BACKEND=s3 this is a local working copy; the "pipeline" storage holds the truth.
PIPELINE_ROOT = Path(env_str("PIPELINE_ROOT", str(VAR_DIR / "pipeline")) or VAR_DIR / "pipeline")
# Cached analysis results for the results page (never served directly).
RESULTS_ROOT = Path(env_str("RESULTS_ROOT", str(VAR_DIR / "results")) or VAR_DIR / "results")
# Serve MEDIA_ROOT from Django (laptop, small deployments). Off behind nginx/S3.
SERVE_MEDIA = env_bool("SERVE_MEDIA", True)

# --- Storage (README "Deploying"): every file goes through one of these storages ---
# local: folders on this host (the laptop default). s3: one bucket (AWS S3, MinIO, any
# S3-compatible store) shared by the web host and the workers on other hosts.
STORAGE_BACKEND = (env_str("STORAGE_BACKEND", "local") or "local").strip().lower()
if STORAGE_BACKEND not in ("local", "s3"):
    raise ImproperlyConfiguredEnv(
        f"STORAGE_BACKEND={STORAGE_BACKEND!r} is not a storage backend; use local or s3"
    )
STATICFILES_STORAGE_BACKEND = "django.contrib.staticfiles.storage.StaticFilesStorage"
if STORAGE_BACKEND == "local":
    STORAGES = {
        # Stimuli and source images (shown to raters under opaque names).
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(MEDIA_ROOT), "base_url": MEDIA_URL},
        },
        # Checkpoints, pipeline manifests and intermediate files (never served).
        "pipeline": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(PIPELINE_ROOT), "base_url": None},
        },
        # Analysis results (served by the results views to the study's researchers only).
        "results": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(RESULTS_ROOT), "base_url": None},
        },
        "staticfiles": {"BACKEND": STATICFILES_STORAGE_BACKEND},
    }
else:
    AWS_STORAGE_BUCKET_NAME = env_required(
        "AWS_STORAGE_BUCKET_NAME", why="STORAGE_BACKEND=s3 keeps every file in this bucket"
    )
    # Any S3-compatible store (MinIO, Ceph, ...); empty = AWS.
    AWS_S3_ENDPOINT_URL = env_str("AWS_S3_ENDPOINT_URL", "") or None
    AWS_S3_REGION_NAME = env_str("AWS_S3_REGION_NAME", "") or None
    # Empty: boto3's own chain (AWS_ACCESS_KEY_ID in the environment, ~/.aws, instance role).
    AWS_S3_ADDRESSING_STYLE = env_str("AWS_S3_ADDRESSING_STYLE", "") or None
    # Stimuli: presigned URLs (default; works with a private bucket) or, with
    # AWS_MEDIA_PRESIGNED=0, plain URLs for a public-read media/ prefix behind a CDN
    # (AWS_S3_CUSTOM_DOMAIN). Either way the object key is the opaque name and nothing else.
    AWS_MEDIA_PRESIGNED = env_bool("AWS_MEDIA_PRESIGNED", True)
    AWS_MEDIA_URL_EXPIRE = env_int("AWS_MEDIA_URL_EXPIRE", 6 * 60 * 60)
    AWS_S3_CUSTOM_DOMAIN = env_str("AWS_S3_CUSTOM_DOMAIN", "") or None
    _s3_common = {
        "bucket_name": AWS_STORAGE_BUCKET_NAME,
        "endpoint_url": AWS_S3_ENDPOINT_URL,
        "region_name": AWS_S3_REGION_NAME,
        "addressing_style": AWS_S3_ADDRESSING_STYLE,
        "signature_version": "s3v4",
        "file_overwrite": False,
        "default_acl": None,
    }
    STORAGES = {
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                **_s3_common,
                "location": "media",
                "querystring_auth": AWS_MEDIA_PRESIGNED,
                "querystring_expire": AWS_MEDIA_URL_EXPIRE,
                "custom_domain": None if AWS_MEDIA_PRESIGNED else AWS_S3_CUSTOM_DOMAIN,
                # Opaque names never change content: cache for a year.
                "object_parameters": {"CacheControl": "public, max-age=31536000, immutable"},
            },
        },
        "pipeline": {
            "BACKEND": "storages.backends.s3.S3Storage",
            # The work folder's mirror: a re-run step replaces its files under the same names.
            "OPTIONS": {
                **_s3_common,
                "location": "pipeline",
                "querystring_auth": True,
                "file_overwrite": True,
            },
        },
        "results": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {**_s3_common, "location": "results", "querystring_auth": True},
        },
        "staticfiles": {"BACKEND": STATICFILES_STORAGE_BACKEND},
    }

# --- HTTP security (README "Deploying"; `manage.py check --deploy` passes with env.sample) ---
# With DEBUG off every default assumes HTTPS behind nginx (deploy/nginx.conf). A plain-HTTP
# loopback run with DEBUG off (scripts/bench_serve) sets COOKIES_SECURE=0 SECURE_SSL_REDIRECT=0.
# nginx terminates TLS and sets X-Forwarded-Proto; trust it only behind that proxy.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
# Load balancers and probes ask over plain HTTP (paths without the leading slash).
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
# Strict-Transport-Security on HTTPS responses: one year once the site is sure of HTTPS.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 365 * 24 * 60 * 60)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# The preload flag is consent for anyone to submit the domain to the browsers' built-in
# HSTS list (hard to undo, binds every subdomain): an operator's choice, off by default,
# so check --deploy's reminder about it (security.W021) is silenced while it is off.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = env_str("SECURE_REFERRER_POLICY", "same-origin") or "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Every page DENY; the rater pages send CSP frame-ancestors for the crowd sites instead
# (apps.studies.framing, apps.core.security).
X_FRAME_OPTIONS = "DENY"
# Cookies only over HTTPS in production; COOKIES_SECURE=0 for a plain-HTTP
# loopback benchmark with DEBUG off.
SESSION_COOKIE_SECURE = env_bool("COOKIES_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True  # no page reads it from JavaScript: they use the form field
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = 60 * 60 * 24 * 7
# Request bodies: rater answers, admin forms and API calls are small (no page uploads
# files); a bigger body is refused (400). nginx refuses bodies over 20 MB first (413).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 5 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = env_int("FILE_UPLOAD_MAX_MEMORY_SIZE", 5 * 1024 * 1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = 10_000
# Content-Security-Policy on every response (apps.core.security.ContentSecurityPolicyMiddleware).
# Images may also come from these origins (a CDN in front of MEDIA_URL, say); the
# object store's origin is derived from STORAGES by itself.
CSP_IMG_SRC_EXTRA = env_list("CSP_IMG_SRC_EXTRA", [])
# Django's cache: the admin login throttle's counters (apps.core.throttle). locmem is
# per process: with several gunicorn workers set REDIS_CACHE_URL so they share counts.
_REDIS_CACHE_URL = env_str("REDIS_CACHE_URL", "") or ""
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _REDIS_CACHE_URL}
        if _REDIS_CACHE_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}
# Admin login: after this many failures for one username, or from one client address,
# within the window, further attempts get 429 without the password being checked.
ADMIN_LOGIN_MAX_FAILURES_PER_USERNAME = env_int("ADMIN_LOGIN_MAX_FAILURES_PER_USERNAME", 5)
ADMIN_LOGIN_MAX_FAILURES_PER_IP = env_int("ADMIN_LOGIN_MAX_FAILURES_PER_IP", 20)
ADMIN_LOGIN_WINDOW_SECONDS = env_int("ADMIN_LOGIN_WINDOW_SECONDS", 15 * 60)

REST_FRAMEWORK = {
    "EXCEPTION_HANDLER": "apps.core.exceptions.api_exception_handler",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# OpenAPI 3 of the researcher API (apps.api): /api/schema/, browsable at /api/docs/.
SPECTACULAR_SETTINGS = {
    "TITLE": "xai-crowd researcher API",
    "VERSION": "1.0.0",
    "DESCRIPTION": (
        "Model families, studies and their life cycle (launch, pause, resume, close), "
        "progress, raters with their quality, the answers (CSV or JSON pages) and the "
        "analysis files. Staff users only: send 'Authorization: Token <key>' (token from "
        "`python manage.py api_token <username>`) or use an admin session. A study you may "
        'not see is a 404. Every error is {"message", "code", "extra"}.'
    ),
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI served from this site (drf-spectacular-sidecar), no CDN: works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "PREPROCESSING_HOOKS": ["apps.api.schema.researcher_endpoints_only"],
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "StudyStatusEnum": "apps.studies.models.Study.Status",
        "ParticipationStatusEnum": "apps.studies.models.Participation.Status",
    },
}

# Celery: no broker configured -> run tasks eagerly in-process (laptop demo).
CELERY_TASK_ALWAYS_EAGER = not env_str("CELERY_BROKER_URL")
# Eager mode never talks to a broker; "memory://" keeps kombu from looking for one.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or "memory://"
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND") or None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "cpu"
# Tasks live in apps/<app>/tasks.py, named "<app>.<action>"; only the model half of a
# pipeline job needs the GPU.
CELERY_TASK_ROUTES = {
    "pipeline.run_job": {"queue": "gpu"},
    "pipeline.finish_job": {"queue": "cpu"},
    "pipeline.reap_stale_jobs": {"queue": "cpu"},
    "studies.*": {"queue": "cpu"},
    "analysis.*": {"queue": "cpu"},
}
# A running pipeline step refreshes its job's updated_at this often (the heartbeat);
# the reaper (Celery beat, every minute) re-queues a running job silent for
# PIPELINE_STALE_SECONDS (its worker was lost), at most PIPELINE_MAX_ATTEMPTS times
# in all, then marks it failed.
PIPELINE_HEARTBEAT_SECONDS = env_int("PIPELINE_HEARTBEAT_SECONDS", 30)
PIPELINE_STALE_SECONDS = env_int("PIPELINE_STALE_SECONDS", 10 * 60)
PIPELINE_MAX_ATTEMPTS = env_int("PIPELINE_MAX_ATTEMPTS", 3)
if not 0 < PIPELINE_HEARTBEAT_SECONDS * 3 <= PIPELINE_STALE_SECONDS:
    raise ImproperlyConfiguredEnv(
        f"PIPELINE_STALE_SECONDS={PIPELINE_STALE_SECONDS} must be at least three heartbeats "
        f"(PIPELINE_HEARTBEAT_SECONDS={PIPELINE_HEARTBEAT_SECONDS}, which must be positive)"
    )
if PIPELINE_MAX_ATTEMPTS < 1:
    raise ImproperlyConfiguredEnv(f"PIPELINE_MAX_ATTEMPTS={PIPELINE_MAX_ATTEMPTS} must be >= 1")
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 6 * 60 * 60}

# --- Logs, health, metrics (README "Deploying"; apps.core.logs, .health, .metrics) ---
# LOG_FORMAT=json: one JSON object a line (time, level, logger, message, request_id,
# task_id, exc): the default with DEBUG off. plain: one readable line (default with DEBUG).
LOG_FORMAT = (env_str("LOG_FORMAT", "plain" if DEBUG else "json") or "").strip().lower()
if LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfiguredEnv(
        f"LOG_FORMAT={LOG_FORMAT!r} is not a log format; use json or plain"
    )
LOGGING = logging_config(
    log_format=LOG_FORMAT,
    level=env_str("LOG_LEVEL", "INFO") or "INFO",
    quiet_kombu=CELERY_TASK_ALWAYS_EAGER,
)
# Celery workers log through LOGGING too (with the task id), not Celery's own format.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# /metrics answers only "Authorization: Bearer <METRICS_TOKEN>" when set; unset, only
# direct (unproxied) requests from loopback or private addresses. Everyone else: 404.
METRICS_TOKEN = env_str("METRICS_TOKEN", "") or ""
# /readyz: seconds each check (broker, each storage) may take before it counts as down.
READYZ_TIMEOUT_SECONDS = float(env_int("READYZ_TIMEOUT_SECONDS", 2))

# Rater-facing defaults.
# Default lease of a task on a rater's screen for new experiments (each experiment has its own).
ASSIGNMENT_LEASE_SECONDS = env_int("ASSIGNMENT_LEASE_SECONDS", 30 * 60)
# How long the task page waits before asking again when every task left is on
# someone else's screen, and while the study is paused.
RATER_WAIT_RETRY_SECONDS = env_int("RATER_WAIT_RETRY_SECONDS", 5)
# Quality in the loop (apps.studies.services.quality): how often Celery beat
# judges the raters of live studies, and after how many answers a rater is judged.
QUALITY_PASS_SECONDS = env_int("QUALITY_PASS_SECONDS", 300)
QUALITY_MIN_ANSWERS = env_int("QUALITY_MIN_ANSWERS", 5)
RATER_PAUSED_RETRY_SECONDS = env_int("RATER_PAUSED_RETRY_SECONDS", 30)
# Plain links only: new participations allowed per browser / per client IP in
# one hour (0 = no limit). The IP is stored only as a keyed hash.
RATER_LINK_JOINS_PER_BROWSER_PER_HOUR = env_int("RATER_LINK_JOINS_PER_BROWSER_PER_HOUR", 0)
RATER_LINK_JOINS_PER_IP_PER_HOUR = env_int("RATER_LINK_JOINS_PER_IP_PER_HOUR", 0)
# Proxies in front of the app that append to X-Forwarded-For (nginx: 1); 0 = use REMOTE_ADDR.
RATER_TRUSTED_PROXIES = env_int("RATER_TRUSTED_PROXIES", 0)
# Lifetime of the rater cookies (browser id, participation per experiment).
RATER_COOKIE_AGE = env_int("RATER_COOKIE_AGE", 30 * 24 * 60 * 60)

# Crowd providers (apps.recruitment; README "Running a study").
# Rater pages may be framed by these origins only (MTurk shows a HIT's
# ExternalQuestion in an iframe on its worker sites); every other page is DENY.
RATER_FRAME_ANCESTORS = env_list(
    "RATER_FRAME_ANCESTORS",
    ["https://worker.mturk.com", "https://www.mturk.com", "https://workersandbox.mturk.com"],
)
# The only hosts the MTurk end page posts the finished assignment to
# (``turkSubmitTo`` comes from the query string and is never trusted as such).
MTURK_SUBMIT_HOSTS = {
    "production": "https://www.mturk.com",
    "sandbox": "https://workersandbox.mturk.com",
}
# MTurk (boto3): credentials from MTURK_ACCESS_KEY_ID / MTURK_SECRET_ACCESS_KEY,
# else boto3's own chain (AWS_ACCESS_KEY_ID, ~/.aws, instance role).
# MTURK_ENDPOINT_URL overrides the requester endpoint (tests, a fake, staging).
MTURK_ENDPOINT_URL = env_str("MTURK_ENDPOINT_URL", "") or ""
MTURK_ACCESS_KEY_ID = env_str("MTURK_ACCESS_KEY_ID", "") or ""
MTURK_SECRET_ACCESS_KEY = env_str("MTURK_SECRET_ACCESS_KEY", "") or ""
# HITs with 10 or more assignments cost MTurk's extra 20 % fee: more HITs of
# at most 9 assignments instead, unless this is raised.
MTURK_MAX_ASSIGNMENTS_PER_HIT = env_int("MTURK_MAX_ASSIGNMENTS_PER_HIT", 9)
# Prolific (REST, token auth).
PROLIFIC_API_URL = (env_str("PROLIFIC_API_URL", "https://api.prolific.com/api/v1") or "").rstrip(
    "/"
)
PROLIFIC_API_TOKEN = env_str("PROLIFIC_API_TOKEN", "") or ""
# Prolific's service fee as a percentage of rewards and bonuses, for the cost
# estimate only (it depends on the account: check your workspace's rate).
PROLIFIC_FEE_PERCENT = env_int("PROLIFIC_FEE_PERCENT", 33)
# Timeout in seconds of one call to a crowd provider.
PROVIDER_TIMEOUT_SECONDS = env_int("PROVIDER_TIMEOUT_SECONDS", 30)
