"""Gunicorn settings for the web process (rater pages, API, admin).

Logs: gunicorn's own lines follow ``LOG_FORMAT`` like Django's (json with
DEBUG off, see apps.core.logs). The access line has the path without its
query string (MTurk and Prolific put the worker id there: raters' ids never
go into a log in clear) and the request id (``X-Request-ID``).

Metrics with several workers: set ``PROMETHEUS_MULTIPROC_DIR`` to a folder
for this service alone (e.g. ``/run/xai-crowd/prometheus``, tmpfs). Each worker
writes its counters and histograms to files there and ``/metrics`` sums them
(prometheus_client multiprocess mode, apps.core.metrics); the folder is
emptied when gunicorn starts, and ``child_exit`` marks a dead or recycled
worker's files (``max_requests`` recycles workers) so its live gauges go.
Without it each worker counts alone and a scrape sees one worker at random.
"""

import multiprocessing
import os
import sys
from pathlib import Path

# The repository root, for apps.core.logs (the JSON formatter) in the master process.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from config.env import env_bool, env_str  # noqa: E402 - needs the root on sys.path

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("GUNICORN_THREADS", "2"))
timeout = 60
graceful_timeout = 30
max_requests = 2000
max_requests_jitter = 200
accesslog = "-"
# %(U)s: the path without the query string (worker ids ride in MTurk/Prolific query strings).
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}o)s'
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# Same rule as config/settings.py: json unless LOG_FORMAT says otherwise or DEBUG is on.
_log_format = (env_str("LOG_FORMAT") or ("plain" if env_bool("DEBUG", False) else "json")).lower()
if _log_format == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "apps.core.logs.JsonFormatter"}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            },
            "error_console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            },
        },
        "root": {"level": "INFO", "handlers": []},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["error_console"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
        },
    }

_MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def on_starting(server):
    """Empty the metrics folder: files of a previous run would be summed into this one's."""
    if not _MULTIPROC_DIR:
        return
    folder = Path(_MULTIPROC_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()


def child_exit(server, worker):
    """A worker died or was recycled: its live gauges leave the sums (counters stay)."""
    if _MULTIPROC_DIR:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
