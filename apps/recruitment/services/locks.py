"""One recruitment command at a time per study.

Two ``pay`` runs of the same study at once could both find a pending call
and send it; a session-level PostgreSQL advisory lock on the study keeps the
second one out (it is told which study is busy). SQLite, the laptop default,
serialises writers anyway and has no such lock: there it is a no-op.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

from apps.core.exceptions import ConflictError
from apps.studies.models import Study

_NAMESPACE = 0x7863  # "xc": our advisory locks, apart from anyone else's


@contextmanager
def study_recruitment_lock(study: Study) -> Iterator[None]:
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_NAMESPACE, study.pk])
        (taken,) = cursor.fetchone()
    if not taken:
        raise ConflictError(
            f"Another publish, sync or pay of study '{study.slug}' is running; "
            "try again when it has finished.",
            code="recruitment_busy",
        )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_NAMESPACE, study.pk])
