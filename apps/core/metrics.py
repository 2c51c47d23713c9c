"""Prometheus metrics: django-prometheus's HTTP and database figures, plus ours.

Ours:

* ``xai_answers_stored_total{kind}``: answers stored (counted after commit),
  by experiment kind (pairwise, forced_choice).
* ``xai_leases{state}``: answer slots leased to a rater, ``on_screen`` (the
  lease runs) or ``expired`` (ran out, not yet freed by the ``studies.expire_leases`` task);
  one query at scrape time.
* ``xai_celery_queue_depth{queue}``: tasks waiting in the ``gpu`` and ``cpu``
  queues (Redis ``LLEN`` at scrape time; absent with in-process Celery).
* ``xai_celery_task_duration_seconds{task,state}``: run time of each Celery
  task, from the ``task_prerun``/``task_postrun`` signals. A worker serves its
  own metrics on ``WORKER_METRICS_PORT`` (``prometheus_client`` HTTP server).

``/metrics`` is not public: with ``METRICS_TOKEN`` set it answers only
``Authorization: Bearer <METRICS_TOKEN>``; without it, only a request from a
loopback or private address that came through no proxy (no
``X-Forwarded-For``/``X-Real-IP``: nginx adds one, so the internet never
passes for a local scraper). Everything else is a 404.

Several processes (gunicorn workers, a prefork Celery worker's children):
set ``PROMETHEUS_MULTIPROC_DIR`` to a folder of that service alone (gunicorn
and each Celery worker its own; emptied when the service starts). Counters
and histograms are then written to files there and every scrape sums them
over processes (``prometheus_client`` multiprocess mode); gunicorn's
``child_exit`` hook (deploy/gunicorn.conf.py) and the worker's
``worker_process_shutdown`` mark dead processes. Without it, each process
counts alone: fine for one process (``runserver``, a worker with
``--pool=solo`` or ``threads``), wrong for several.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from apps.core.logs import task_id_var

logger = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

ANSWERS_STORED = Counter(
    "xai_answers_stored", "Rater answers stored (after commit), by experiment kind.", ["kind"]
)
TASK_DURATION = Histogram(
    "xai_celery_task_duration_seconds",
    "Run time of Celery tasks, by task name and final state.",
    ["task", "state"],
    # From a lease sweep (well under a second) to training a model (hours).
    buckets=(0.05, 0.25, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, float("inf")),
)


def answer_stored(kind: str) -> None:
    """Count one stored answer; call it from ``transaction.on_commit``."""
    ANSWERS_STORED.labels(kind=kind).inc()


# -- collected at scrape time -----------------------------------------------------------


class LeaseCollector(Collector):
    """Slots on a rater's screen now and slots whose lease ran out but are not freed yet."""

    def collect(self) -> Iterable[GaugeMetricFamily]:
        from django.db.models import Count, Q

        from apps.core import clock
        from apps.studies.models import Slot

        now = clock.now()
        try:
            counts = Slot.objects.filter(is_answered=False, holder__isnull=False).aggregate(
                on_screen=Count("pk", filter=Q(lease_expires_at__gt=now)),
                expired=Count("pk", filter=Q(lease_expires_at__lte=now)),
            )
        except Exception:  # noqa: BLE001 - a scrape must not fail with the database
            logger.warning("metrics: lease counts unavailable", exc_info=True)
            return
        gauge = GaugeMetricFamily(
            "xai_leases", "Answer slots leased to a rater, by lease state.", labels=["state"]
        )
        gauge.add_metric(["on_screen"], counts["on_screen"] or 0)
        gauge.add_metric(["expired"], counts["expired"] or 0)
        yield gauge


def celery_queues() -> list[str]:
    """The queues tasks are routed to (``gpu``, ``cpu``), from the Celery settings."""
    queues = {settings.CELERY_TASK_DEFAULT_QUEUE}
    for route in getattr(settings, "CELERY_TASK_ROUTES", {}).values():
        if isinstance(route, dict) and route.get("queue"):
            queues.add(route["queue"])
    return sorted(queues)


class QueueDepthCollector(Collector):
    """Tasks waiting per queue: ``LLEN`` of the queue's Redis lists (priority lists too)."""

    # kombu's Redis transport keeps priorities 3, 6, 9 in lists "<queue>\x06\x16<n>".
    PRIORITY_SEPARATOR = "\x06\x16"
    PRIORITY_STEPS = (0, 3, 6, 9)

    def collect(self) -> Iterable[GaugeMetricFamily]:
        from apps.core.health import broker_configured

        url = settings.CELERY_BROKER_URL or ""
        if not broker_configured() or not url.startswith(("redis://", "rediss://", "unix://")):
            return
        import redis

        prefix = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", "")
        queues = celery_queues()
        timeout = float(getattr(settings, "READYZ_TIMEOUT_SECONDS", 2.0))
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            pipe = client.pipeline(transaction=False)
            for queue in queues:
                for step in self.PRIORITY_STEPS:
                    key = queue if step == 0 else f"{queue}{self.PRIORITY_SEPARATOR}{step}"
                    pipe.llen(f"{prefix}{key}")
            lengths = pipe.execute()
        except Exception:  # noqa: BLE001 - a scrape must not fail with the broker
            logger.warning("metrics: queue depths unavailable", exc_info=True)
            return
        finally:
            client.close()
        gauge = GaugeMetricFamily(
            "xai_celery_queue_depth", "Celery tasks waiting in each queue.", labels=["queue"]
        )
        steps = len(self.PRIORITY_STEPS)
        for index, queue in enumerate(queues):
            gauge.add_metric([queue], sum(lengths[index * steps : (index + 1) * steps]))
        yield gauge


def _scrape_time_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LeaseCollector())
    registry.register(QueueDepthCollector())
    return registry


def process_registry() -> CollectorRegistry:
    """This process's metrics, or every process's in multiprocess mode."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def render_metrics() -> bytes:
    """The text exposition: the process (or multiprocess) metrics, then the scrape-time ones.

    The scrape-time collectors are kept out of the global registry so a Celery
    worker's metrics server never queries the database or the broker.
    """
    return generate_latest(process_registry()) + generate_latest(_scrape_time_registry())


# -- the view ---------------------------------------------------------------------------


# Loopback and the private ranges (RFC 1918, IPv6 unique local): not ``is_private``,
# which also counts documentation and other reserved ranges as private.
LOCAL_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in (
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "::1/128",
        "fc00::/7",
    )
)


def _bearer_token(request: HttpRequest) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def metrics_allowed(request: HttpRequest) -> bool:
    """Token when ``METRICS_TOKEN`` is set; else a direct request from a local/private address."""
    expected = getattr(settings, "METRICS_TOKEN", "") or ""
    if expected:
        return hmac.compare_digest(_bearer_token(request).encode(), expected.encode())
    if "X-Forwarded-For" in request.headers or "X-Real-IP" in request.headers:
        return False  # came through a proxy: the address is the proxy's, not the caller's
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in LOCAL_NETWORKS)


@csrf_exempt
@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD") or not metrics_allowed(request):
        raise Http404("Not found")
    return HttpResponse(render_metrics(), content_type=CONTENT_TYPE_LATEST)


# -- Celery: task durations, task ids in logs, the worker's own metrics server ---------------

# Start time and log-context token of each running task, by task id. An eager task
# that re-raises (CELERY_TASK_EAGER_PROPAGATES, in-process Celery only) gets no
# task_postrun, so no duration, and its entry stays: the table is kept small.
_task_started: dict[str, tuple[float, Any]] = {}
_TASKS_TRACKED_MAX = 10_000


def _on_task_prerun(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    if task_id is None:
        return
    if len(_task_started) >= _TASKS_TRACKED_MAX:
        _task_started.clear()
    _task_started[task_id] = (time.monotonic(), task_id_var.set(task_id))


def _on_task_postrun(
    task_id: str | None = None, task: Any = None, state: str | None = None, **kwargs: Any
) -> None:
    started = _task_started.pop(task_id, None) if task_id else None
    if started is None:
        return
    began, token = started
    TASK_DURATION.labels(task=getattr(task, "name", "unknown"), state=state or "UNKNOWN").observe(
        time.monotonic() - began
    )
    try:
        task_id_var.reset(token)
    except ValueError:  # set in another context (a thread pool): just clear it
        task_id_var.set(None)


def _on_worker_init(**kwargs: Any) -> Any:
    """Serve this worker's metrics on ``WORKER_METRICS_PORT`` (unset: no server).

    Connected to ``worker_init``: the worker's main process, before a prefork
    pool forks its children (which then need ``PROMETHEUS_MULTIPROC_DIR``).
    Returns prometheus_client's ``(server, thread)``, or None without a port.
    """
    port = os.environ.get("WORKER_METRICS_PORT", "").strip()
    if not port:
        return None
    if not port.isdigit():
        raise ValueError(f"WORKER_METRICS_PORT={port!r} is not a port number")
    folder = os.environ.get(MULTIPROC_ENV)
    if folder:  # this worker's own folder: a previous run's files would be summed in
        for stale in Path(folder).glob("*.db"):
            stale.unlink()
    from prometheus_client import start_http_server

    address = os.environ.get("WORKER_METRICS_ADDR", "0.0.0.0")
    served = start_http_server(int(port), addr=address, registry=process_registry())
    logger.info("worker metrics on %s:%s", address, port)
    return served


def _on_worker_process_shutdown(pid: int | None = None, **kwargs: Any) -> None:
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())


def connect_celery_signals() -> None:
    """Connect the task timing, task-id logging and worker metrics server (idempotent)."""
    from celery import signals

    signals.task_prerun.connect(_on_task_prerun, weak=False, dispatch_uid="xai-metrics-prerun")
    signals.task_postrun.connect(_on_task_postrun, weak=False, dispatch_uid="xai-metrics-postrun")
    signals.worker_init.connect(_on_worker_init, weak=False, dispatch_uid="xai-metrics-worker")
    signals.worker_process_shutdown.connect(
        _on_worker_process_shutdown, weak=False, dispatch_uid="xai-metrics-process-dead"
    )
