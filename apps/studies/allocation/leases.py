"""Leases: renew, release and expire them; fill a slot with an answer.

A slot's lease belongs to the participation in ``slot.holder`` until
``slot.lease_expires_at``. After that the slot is claimable again (lazily,
by :func:`~apps.studies.allocation.claims.slot_claim`) and the periodic
:func:`leases_expire` frees it outright; each is correct without the other.
An expired lease not yet taken by anyone is still the holder's to renew.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction

from apps.core import rawsql
from apps.studies.allocation import lock_objects
from apps.studies.models import Assignment, Response, Slot


def _held_by(slot: Slot, participation_id: int) -> bool:
    return not slot.is_answered and slot.holder_id == participation_id


@functools.cache
def _renew_sql() -> str:
    return (
        f"UPDATE {rawsql.table(Slot)} SET holder_id = %s, lease_expires_at = %s"
        " WHERE id = %s AND NOT is_answered AND (holder_id = %s OR holder_id IS NULL)"
    )


@functools.cache
def _fill_on_time_sql() -> str:
    return (
        f"UPDATE {rawsql.table(Slot)} SET is_answered = %s, lease_expires_at = NULL"
        " WHERE id = %s AND holder_id = %s AND NOT is_answered AND lease_expires_at > %s"
    )


def _as_db(value: datetime) -> object:
    return connection.ops.adapt_datetimefield_value(value)


def lease_renew(
    *, assignment: Assignment, participation_id: int, lease_seconds: int, now: datetime
) -> datetime | None:
    """Extend the rater's hold on the assignment's task; the new expiry, or ``None`` if lost.

    One UPDATE when the rater still holds their slot (or nobody took it after
    it ran out). If it went to someone else, another free slot of the same
    task is taken instead, so a rater keeps their task whenever the task
    still has room. Runs inside the caller's transaction.
    """
    expires = now + timedelta(seconds=lease_seconds)
    params = [participation_id, _as_db(expires), assignment.slot_id, participation_id]
    if rawsql.execute(_renew_sql(), params):
        return expires
    slot = lock_objects.slot_of_task_claimable_for_update(task_id=assignment.task_id, now=now)
    if slot is None:
        return None
    Assignment.objects.filter(pk=assignment.pk).update(slot_id=slot.pk)
    assignment.slot_id = slot.pk
    Slot.objects.filter(pk=slot.pk).update(holder_id=participation_id, lease_expires_at=expires)
    return expires


def lease_release(*, assignment_id: int, participation_id: int) -> None:
    """Give back the assignment's slot if the participation still holds it (it is done)."""
    slot = Assignment.objects.filter(pk=assignment_id).values("slot_id")[:1]
    Slot.objects.filter(pk=slot, holder_id=participation_id, is_answered=False).update(
        holder_id=None, lease_expires_at=None
    )


def answer_place(
    *, assignment: Assignment, participation_id: int, now: datetime, answer: dict[str, Any]
) -> Response:
    """Store an answer in the slot it fills and return it; flagged late / over quota.

    ``answer``: the response's columns (by attname) but ``slot``, ``late``
    and ``over_quota``, which are decided here. On time (the common case): the
    assignment's own slot, still held with a live lease, filled and the row
    inserted by one statement on PostgreSQL. Late (the lease ran out): the
    own slot if nobody took it, else any free or expired slot of the same
    task; a live lease of another rater is never taken. With no such slot the
    answer is kept outside the quota (no slot, ``over_quota``).
    """
    on_time = {**answer, "late": False, "over_quota": False}
    if connection.vendor == "postgresql":
        pk = lock_objects.slot_fill_on_time_and_store(
            slot_id=assignment.slot_id, participation_id=participation_id, now=now,
            response=on_time,
        )  # fmt: skip
        if pk is not None:
            row = rawsql.row(Response, {**on_time, "slot_id": assignment.slot_id})
            return rawsql.built(Response, pk, row)
    slot_id, late = _slot_fill(assignment=assignment, participation_id=participation_id, now=now)
    return rawsql.insert(Response, **answer, slot_id=slot_id, late=late, over_quota=slot_id is None)


def _slot_fill(
    *, assignment: Assignment, participation_id: int, now: datetime
) -> tuple[int | None, bool]:
    """Mark the slot an answer fills: ``(slot id, late)``; ``(None, True)`` if none is free."""
    params = [True, assignment.slot_id, participation_id, _as_db(now)]
    if rawsql.execute(_fill_on_time_sql(), params):
        return assignment.slot_id, False
    slot = lock_objects.slot_for_update(slot_id=assignment.slot_id)
    if not _held_by(slot, participation_id):
        slot = lock_objects.slot_of_task_claimable_for_update(task_id=assignment.task_id, now=now)
        if slot is None:
            return None, True
    Slot.objects.filter(pk=slot.pk).update(
        is_answered=True, holder_id=participation_id, lease_expires_at=None
    )
    return slot.pk, True


def leases_expire(*, now: datetime, batch_size: int = 1000) -> int:
    """Free every slot whose lease ran out before ``now``; returns how many.

    Batches of ``batch_size`` rows, each its own short transaction; rows
    locked by a claim or an answer in flight are skipped (they are being
    handled), so this never waits on the rater loop.
    """
    freed = 0
    while True:
        with transaction.atomic():
            ids = lock_objects.slots_expired_for_update(now=now, limit=batch_size)
            if ids:
                Slot.objects.filter(pk__in=ids).update(holder_id=None, lease_expires_at=None)
        freed += len(ids)
        if len(ids) < batch_size:
            return freed
