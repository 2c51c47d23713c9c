"""Liveness and readiness probes.

``/healthz``: the process answers (no database, no broker, no storage): a
failing liveness probe means "restart me", which would not cure a database
outage. ``/readyz``: this process can serve: the database answers ``SELECT 1``,
the Celery broker answers a ping, and each storage ("default", "pipeline",
"results") answers one cheap round trip (S3: a one-key listing, which needs
s3:ListBucket; local: a stat). 200 when every check is
ok, else 503 naming what is down::

    {"status": "unavailable",
     "checks": {"database": "ok", "broker": "ok", "storage:default": "down: ..."}}

A reason is a short exception summary with URLs and known secrets (passwords,
keys, tokens from the settings) cut out, since the probe is unauthenticated.
Each network check has a short timeout (``READYZ_TIMEOUT_SECONDS``, 2 s by
default): a dead S3 endpoint or broker answers in seconds, not minutes.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.db import connection
from django.dispatch import receiver
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

OK = "ok"
BROKER_IN_PROCESS = "not configured (in-process)"
STORAGE_ALIASES = ("default", "pipeline", "results")
PROBE_NAME = "readyz-probe"
REASON_MAX_CHARS = 160


def _timeout() -> float:
    return float(getattr(settings, "READYZ_TIMEOUT_SECONDS", 2.0))


# -- reasons without secrets ------------------------------------------------------------

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")


def _secrets() -> list[str]:
    """Every secret value the settings hold, to be cut out of a reason."""
    values: list[Any] = [
        getattr(settings, name, None)
        for name in (
            "SECRET_KEY",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_S3_SECRET_ACCESS_KEY",
            "AWS_ACCESS_KEY_ID",
            "AWS_S3_ACCESS_KEY_ID",
            "AWS_SESSION_TOKEN",
            "MTURK_SECRET_ACCESS_KEY",
            "PROLIFIC_API_TOKEN",
            "METRICS_TOKEN",
            "CELERY_BROKER_URL",
            "CELERY_RESULT_BACKEND",
        )
    ]
    values += [db.get("PASSWORD") for db in settings.DATABASES.values()]
    for config in settings.STORAGES.values():
        options = config.get("OPTIONS", {})
        values += [options.get(key) for key in ("secret_key", "access_key", "security_token")]
    return sorted({v for v in values if isinstance(v, str) and len(v) >= 4}, key=len, reverse=True)


def short_reason(exc: BaseException) -> str:
    """``down: <ExceptionClass>: <message>``, one line, URLs and secrets removed."""
    text = " ".join(str(exc).split())
    text = _URL.sub("<url>", text)
    for secret in _secrets():
        text = text.replace(secret, "<secret>")
    if len(text) > REASON_MAX_CHARS:
        text = text[: REASON_MAX_CHARS - 1] + "…"
    name = type(exc).__name__
    return f"down: {name}: {text}" if text else f"down: {name}"


# -- the checks -------------------------------------------------------------------------


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def broker_configured() -> bool:
    """False when Celery runs tasks in this process (no broker: the laptop default)."""
    url = settings.CELERY_BROKER_URL or ""
    return not settings.CELERY_TASK_ALWAYS_EAGER and not url.startswith("memory://")


def check_broker() -> None:
    url = settings.CELERY_BROKER_URL
    timeout = _timeout()
    if url.startswith(("redis://", "rediss://", "unix://")):
        import redis

        client = redis.Redis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout, retry_on_timeout=False
        )
        try:
            client.ping()
        finally:
            client.close()
        return
    from kombu import Connection

    with Connection(url, connect_timeout=timeout) as conn:
        conn.ensure_connection(max_retries=1, timeout=timeout)


_probes: dict[tuple[str, ...], Any] = {}
_probes_lock = threading.Lock()


@receiver(setting_changed)
def _forget_probes(*, setting: str, **kwargs: Any) -> None:
    if setting in ("STORAGES", "READYZ_TIMEOUT_SECONDS"):
        with _probes_lock:
            _probes.clear()


def _s3_probe(alias: str) -> tuple[Any, Any] | None:
    """For an S3 storage: the storage and a boto3 client that gives up within the timeout.

    The app's own S3 storages keep botocore's defaults (60 s reads, retries),
    right for uploads; a probe needs an answer in seconds. A client (thread
    safe) is made once per process and connection settings, shared by the
    storages that use the same bucket and endpoint (building one takes a few
    tenths of a second). It is keyed by those settings, so a client built for
    settings since changed is never used.
    """
    from django.core.files.storage import storages

    storage = storages[alias]
    if "storages.backends.s3" not in sys.modules:  # no S3 storage made: spare boto3's import
        return None
    from botocore.config import Config
    from storages.backends.s3 import S3Storage

    if not isinstance(storage, S3Storage):
        return None
    key = tuple(
        repr(getattr(storage, name, None))
        for name in (
            "bucket_name", "endpoint_url", "region_name", "access_key", "secret_key",
            "security_token", "session_profile", "addressing_style", "signature_version",
            "proxies", "verify", "use_ssl",
        )
    ) + (repr(_timeout()),)  # fmt: skip
    with _probes_lock:  # one probe thread builds it, the others wait for it
        client = _probes.get(key)
        if client is None:
            timeout = _timeout()
            copy = storages.create_storage(settings.STORAGES[alias])
            copy.client_config = copy.client_config.merge(
                Config(
                    connect_timeout=timeout,
                    read_timeout=timeout,
                    retries={"max_attempts": 1, "mode": "standard"},
                )
            )
            client = _probes[key] = copy.connection.meta.client
    return storage, client


def check_storage(alias: str) -> None:
    """One round trip. S3: list at most one key under the probe name (an error for a
    missing bucket, unlike a HEAD, whose 404 would not tell). Local folders: a stat."""
    from django.core.files.storage import storages

    probe = _s3_probe(alias)
    if probe is None:
        storages[alias].exists(PROBE_NAME)
        return
    storage, client = probe
    client.list_objects_v2(
        Bucket=storage.bucket_name, Prefix=storage._normalize_name(PROBE_NAME), MaxKeys=1
    )


def readiness() -> dict[str, str]:
    """Every check by name: ``"ok"``, ``"not configured (in-process)"`` or ``"down: ..."``.

    The broker and the storages are asked at the same time, each in a daemon
    thread, against one deadline (the timeout plus a second): a hung mount or a
    socket that ignores its own timeout cannot hang the probe (the thread is
    left to finish on its own). The database is asked in this thread, on this
    thread's own connection.
    """
    timeout = _timeout()
    started: dict[str, tuple[threading.Thread, list[str]]] = {}

    def run(check: Callable[[], None], box: list[str]) -> None:
        try:
            check()
            box.append(OK)
        except Exception as exc:  # noqa: BLE001 - any failure means "down", with its reason
            box.append(short_reason(exc))

    def start(name: str, check: Callable[[], None]) -> None:
        box: list[str] = []
        thread = threading.Thread(target=run, args=(check, box), name="readyz", daemon=True)
        thread.start()
        started[name] = (thread, box)

    deadline = time.monotonic() + timeout + 1
    configured = broker_configured()
    if configured:
        start("broker", check_broker)
    for alias in STORAGE_ALIASES:
        if alias in settings.STORAGES:
            start(f"storage:{alias}", lambda alias=alias: check_storage(alias))

    checks: dict[str, str] = {}
    try:
        check_database()
        checks["database"] = OK
    except Exception as exc:  # noqa: BLE001 - any failure means "down", with its reason
        checks["database"] = short_reason(exc)
    if not configured:
        checks["broker"] = BROKER_IN_PROCESS
    for name, (thread, box) in started.items():
        thread.join(max(0.0, deadline - time.monotonic()))
        checks[name] = box[0] if box else f"down: no answer within {timeout + 1:g} s"
    return checks


def is_ready(checks: dict[str, str]) -> bool:
    return all(value in (OK, BROKER_IN_PROCESS) for value in checks.values())


# -- the views --------------------------------------------------------------------------


@csrf_exempt
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is alive: 200 ``{"status": "ok"}``; touches nothing else."""
    return JsonResponse({"status": "ok"})


@csrf_exempt
@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """200 when the database, the broker and every storage answer; else 503 naming what is down."""
    checks = readiness()
    if is_ready(checks):
        return JsonResponse({"status": "ok", "checks": checks})
    return JsonResponse({"status": "unavailable", "checks": checks}, status=503)
