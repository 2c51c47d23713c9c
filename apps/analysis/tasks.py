"""Celery tasks of the analysis app (cpu queue): thin adapters over its services."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

TRANSIENT_ERRORS = (OperationalError, InterfaceError, ConnectionError)


@shared_task(
    name="analysis.study_analyze",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=True,
    max_retries=5,
)
def study_analyze(study_id: int, run_id: int) -> str:
    """The results page's analysis of one state of a study (cpu queue); its row is ``run_id``."""
    from apps.analysis.services import analysis_run_execute

    return analysis_run_execute(study_id=study_id, run_id=run_id).status
