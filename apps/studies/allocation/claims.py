"""Claiming: hand a claimant the next slot, or say whether anything is left."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.db import connection

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
    expires = now + timedelta(seconds=lease_seconds)
    values = {
        "participation_id": claimant.participation_id,
        "rater_id": claimant.rater_id,
        "experiment_id": claimant.experiment_id,
        "one_per_image": claimant.one_per_image,
        "claimed_at": now,
        "public_id": uuid.uuid4(),
    }
    if connection.vendor == "postgresql":  # one round trip instead of two (hot path)
        recorded = lock_objects.slot_lease_and_record(
            claimant=claimant, now=now, expires=expires, assignment=values
        )
        if recorded is None:
            return None
        pk, task_id, image_id, slot_id = recorded
        row = {**values, "task_id": task_id, "image_id": image_id, "slot_id": slot_id}
        return rawsql.built(Assignment, pk, rawsql.row(Assignment, row))
    leased = lock_objects.slot_lease_first_claimable(claimant=claimant, now=now, expires=expires)
    if leased is None:
        return None
    slot_id, task_id, image_id = leased
    return rawsql.insert(Assignment, task_id=task_id, image_id=image_id, slot_id=slot_id, **values)


def work_remains(*, claimant: Claimant) -> bool:
    """After a claim found nothing: is some unanswered slot (leased now) still eligible?"""
    return lock_objects.slot_unanswered_exists(claimant=claimant)
