"""Recruitment writes: publish, sync, pay, close (one module per step)."""

from apps.recruitment.services.paying import PayDecision, PayReport, study_pay
from apps.recruitment.services.publishing import (
    PublishPlan,
    publication_close,
    publication_publish,
    publications_prepare,
    study_publish_plan,
)
from apps.recruitment.services.syncing import SyncReport, publication_sync

__all__ = [
    "PayDecision",
    "PayReport",
    "PublishPlan",
    "SyncReport",
    "publication_close",
    "publication_publish",
    "publication_sync",
    "publications_prepare",
    "study_pay",
    "study_publish_plan",
]
