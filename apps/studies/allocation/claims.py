"""Claiming: hand a claimant the next slot, or say whether anything is left."""

from __future__ import annotations

from datetime import datetime, timedelta

from apps.core import rawsql
from apps.studies.allocation import lock_objects
from apps.studies.allocation.claimant import Claimant
from apps.studies.models import Assignment


def slot_claim(*, claimant: Claimant, lease_seconds: int, now: datetime) -> Assignment | None:
    """Lease the first claimable slot the claimant may get; ``None`` if there is none now.

    Must run inside ``transaction.atomic()`` with the claimant's participation
    locked (one claim per participation at a time). The lease is written on
    the locked slot row itself, which is what makes over-leasing impossible.
    """
    leased = lock_objects.slot_lease_first_claimable(
        claimant=claimant, now=now, expires=now + timedelta(seconds=lease_seconds)
    )
    if leased is None:
        return None
    slot_id, task_id, image_id = leased
    return rawsql.insert(
        Assignment,
        participation_id=claimant.participation_id,
        rater_id=claimant.rater_id,
        experiment_id=claimant.experiment_id,
        task_id=task_id,
        image_id=image_id,
        slot_id=slot_id,
        one_per_image=claimant.one_per_image,
        claimed_at=now,
    )


def work_remains(*, claimant: Claimant) -> bool:
    """After a claim found nothing: is some unanswered slot (leased now) still eligible?"""
    return lock_objects.slot_unanswered_exists(claimant=claimant)
