"""Claiming: hand a claimant the next slot, or say whether anything is left."""

from __future__ import annotations

from datetime import datetime, timedelta

from apps.studies.allocation import lock_objects
from apps.studies.allocation.claimant import Claimant
from apps.studies.models import Assignment, Slot


def slot_claim(*, claimant: Claimant, lease_seconds: int, now: datetime) -> Assignment | None:
    """Lease the first claimable slot the claimant may get; ``None`` if there is none now.

    Must run inside ``transaction.atomic()`` with the claimant's participation
    locked (one claim per participation at a time). The lease is written on
    the locked slot row itself, which is what makes over-leasing impossible.
    """
    slot = lock_objects.slot_claimable_for_update(claimant=claimant, now=now)
    if slot is None:
        return None
    Slot.objects.filter(pk=slot.pk).update(
        holder_id=claimant.participation_id,
        lease_expires_at=now + timedelta(seconds=lease_seconds),
    )
    return Assignment.objects.create(
        participation_id=claimant.participation_id,
        rater_id=claimant.rater_id,
        experiment_id=claimant.experiment_id,
        task_id=slot.task_id,
        image_id=slot.image_id,
        slot_id=slot.pk,
        one_per_image=claimant.one_per_image,
        claimed_at=now,
    )


def work_remains(*, claimant: Claimant) -> bool:
    """After a claim found nothing: is some unanswered slot (leased now) still eligible?"""
    return lock_objects.slot_unanswered_exists(claimant=claimant)
