"""Structured logs: one JSON object a line, each carrying its request or task id.

``LOG_FORMAT=json`` (the default with ``DEBUG`` off) makes every line a JSON
object with ``time``, ``level``, ``logger``, ``message``, ``request_id``,
``task_id`` and, when there is one, ``exc`` (the traceback text);
``LOG_FORMAT=plain`` (the default with ``DEBUG`` on) prints the same fields
on one readable line. The ids come from context variables:
:class:`apps.core.middleware.RequestIdMiddleware` sets the request id for the
length of a request, the Celery ``task_prerun``/``task_postrun`` signals
(:mod:`apps.core.metrics`) the task id for the length of a task.

Raters' worker ids (MTurk worker id, Prolific PID, a rater's ``external_id``)
never go into a log in clear: log :func:`hash_rater_id` of them, which still
lets one follow a rater through the logs.

This module is imported by ``logging.config.dictConfig`` while Django starts
(and by gunicorn's master): it must not import models.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import json
import logging
import re
import uuid
from datetime import UTC, datetime

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
task_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("task_id", default=None)

# An incoming X-Request-ID is kept only if it is a short token of safe characters:
# anything else (a log-injection attempt, a huge header) gets a fresh id instead.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def request_id_from_header(value: str | None) -> str:
    """The caller's request id when it is a sane token (≤ 64 of [A-Za-z0-9._-]), else a new one."""
    if value and _SANE_REQUEST_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


def hash_rater_id(value: str | None) -> str:
    """A keyed hash (HMAC-SHA256 with SECRET_KEY, 16 hex digits) of a rater's worker id.

    The same id always gives the same hash on one deployment, so a rater can be
    followed through the logs, but the id itself cannot be read back (and,
    being keyed, cannot be found by hashing a list of known worker ids).
    An empty or missing id gives ``"-"``.
    """
    if not value:
        return "-"
    from django.conf import settings

    digest = hmac.new(
        settings.SECRET_KEY.encode(), f"rater-id:{value}".encode(), hashlib.sha256
    ).hexdigest()
    return digest[:16]


class ContextFilter(logging.Filter):
    """Puts ``request_id`` and ``task_id`` (``"-"`` when none) on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get() or "-"
        if not hasattr(record, "task_id"):
            record.task_id = task_id_var.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request_id, task_id, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id_var.get() or "-",
            "task_id": getattr(record, "task_id", None) or task_id_var.get() or "-",
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


PLAIN_FORMAT = (
    "%(asctime)s %(levelname)s %(name)s [req=%(request_id)s task=%(task_id)s]: %(message)s"
)


def logging_config(*, log_format: str, level: str, quiet_kombu: bool) -> dict:
    """The ``LOGGING`` dict of the settings for ``log_format`` ``json`` or ``plain``."""
    if log_format not in ("json", "plain"):
        raise ValueError(f"LOG_FORMAT={log_format!r} is not a log format; use json or plain")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "apps.core.logs.ContextFilter"}},
        "formatters": {
            "plain": {"format": PLAIN_FORMAT},
            "json": {"()": "apps.core.logs.JsonFormatter"},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": log_format,
                "filters": ["context"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "WARNING"},
            # In-process Celery (no broker) uses kombu's memory transport, which warns
            # that it has no hostname on every send: noise, not a problem.
            **({"kombu.connection": {"level": "ERROR"}} if quiet_kombu else {}),
        },
    }
