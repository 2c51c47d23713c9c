"""The Celery application.

Without ``CELERY_BROKER_URL`` the settings switch Celery to eager mode, so the
laptop demo runs every task in-process. Queues: ``gpu`` for training, pruning
and attribution, ``cpu`` for metrics and encoding (see workers/tasks.py).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("xai_crowd")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(lambda: ["workers"])

# Periodic tasks, for `celery -A config beat` (or a worker started with -B).
app.conf.beat_schedule = {
    "expire-leases": {"task": "workers.tasks.cpu_expire_leases", "schedule": 60.0},
    "quality-pass": {
        "task": "workers.tasks.cpu_quality_pass",
        "schedule": float(os.environ.get("QUALITY_PASS_SECONDS", "300")),
    },
}
