"""The Celery application.

Without ``CELERY_BROKER_URL`` the settings switch Celery to eager mode, so the
laptop demo runs every task in-process. Queues: ``gpu`` for training, pruning
and attribution, ``cpu`` for metrics, imports and periodic work (``CELERY_TASK_ROUTES``).
Tasks live with the Django app whose rows they write (``apps/<app>/tasks.py``,
named ``<app>.<action>``); ``workers/`` is pure compute.
"""

import os

from celery import Celery

from apps.core.metrics import connect_celery_signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("xai_crowd")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()  # apps/<app>/tasks.py of every installed app

# Task run times (Prometheus), the task id on every log line of a task, and a
# worker's own metrics server on WORKER_METRICS_PORT (apps.core.metrics).
connect_celery_signals()

# Periodic tasks, for `celery -A config beat` (or a worker started with -B).
app.conf.beat_schedule = {
    "expire-leases": {"task": "studies.expire_leases", "schedule": 60.0},
    "quality-pass": {
        "task": "studies.quality_pass",
        "schedule": float(os.environ.get("QUALITY_PASS_SECONDS", "300")),
    },
    # Pipeline jobs whose worker was lost (no heartbeat): re-queued or failed.
    "reap-stale-jobs": {"task": "pipeline.reap_stale_jobs", "schedule": 60.0},
}
