"""Celery tasks of the studies app (periodic, cpu queue): thin adapters over its services."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

TRANSIENT_ERRORS = (OperationalError, InterfaceError, ConnectionError)


@shared_task(
    name="studies.expire_leases",
    autoretry_for=TRANSIENT_ERRORS,
    max_retries=2,
    ignore_result=True,
)
def expire_leases() -> int:
    """Periodic (Celery beat, every minute): free answer slots whose lease ran out.

    Claims treat an expired lease as free on their own; this keeps the
    slots tidy and the admin's "on screen now" figure exact.
    """
    from apps.core import clock
    from apps.studies.allocation import leases_expire

    return leases_expire(now=clock.now())


@shared_task(
    name="studies.quality_pass",
    autoretry_for=TRANSIENT_ERRORS,
    max_retries=2,
    ignore_result=True,
)
def quality_pass() -> int:
    """Periodic (Celery beat, ``QUALITY_PASS_SECONDS``): judge the raters of live studies,
    exclude per the quality rules and reopen their slots (``apps.studies.services.quality``)."""
    from apps.studies.services.quality import live_studies_quality_pass

    return sum(len(p.excluded) for p in live_studies_quality_pass().values())
