"""The row-locking queries of the allocation engine (STYLE §4).

Every function here must run inside ``transaction.atomic()``; the row locks
are held until that transaction ends, so keep it short. On SQLite (the
laptop default) ``select_for_update`` is a no-op and the settings' IMMEDIATE
transactions serialise writers instead, which is correct, only slower.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Exists, OuterRef, Q

from apps.studies.allocation.claimant import Claimant
from apps.studies.models import Assignment, Slot


def _claimable(now: datetime) -> Q:
    """Unanswered, and free or leased until ``now`` at the latest (an expired lease)."""
    return Q(is_answered=False) & (Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now))


def _not_seen(claimant: Claimant) -> list[Q]:
    """Filters leaving out what ``claimant`` must not get again.

    Each is a NOT EXISTS probe of an index on assignments, evaluated per
    candidate slot: (participation, image) with one task per image (which
    implies one per task), else (task, rater); across a study (rater, image).
    """
    if claimant.one_per_image:
        seen = Assignment.objects.filter(
            participation_id=claimant.participation_id, image_id=OuterRef("image_id")
        )
    else:
        seen = Assignment.objects.filter(rater_id=claimant.rater_id, task_id=OuterRef("task_id"))
    filters = [~Exists(seen)]
    if claimant.across_study_id is not None:
        elsewhere = Assignment.objects.filter(
            rater_id=claimant.rater_id,
            image_id=OuterRef("image_id"),
            experiment__study_id=claimant.across_study_id,
        )
        filters.append(~Exists(elsewhere))
    return filters


def slot_claimable_for_update(*, claimant: Claimant, now: datetime) -> Slot | None:
    """The first claimable slot in allocation order that ``claimant`` may get, locked.

    One ordered walk of the partial index ``slot_open_by_rank`` that stops at
    the first row passing the filters: O(log n) to find the start, then as
    many rows as are leased, being claimed right now (``skip_locked`` steps
    over them instead of queueing) or excluded for this rater, which is
    bounded by the number of raters and the rater's own history, not by the
    number of tasks. The caller writes its lease on the returned row in the
    same transaction, so no concurrent claim can take it too: a claim that
    read the row before that commit re-checks it when it tries to lock it,
    finds it leased and moves on.
    """
    return (
        Slot.objects.filter(
            _claimable(now), *_not_seen(claimant), experiment_id=claimant.experiment_id
        )
        .order_by("rank")
        .only("pk", "task_id", "image_id")
        .select_for_update(skip_locked=True, of=("self",))
        .first()
    )


def slot_unanswered_exists(*, claimant: Claimant) -> bool:
    """Whether any unanswered slot (free or leased) is left that ``claimant`` may get.

    Asked only when a claim found nothing: True means "wait, leases may
    free up", False means "nothing is left for you".
    """
    return Slot.objects.filter(
        *_not_seen(claimant), experiment_id=claimant.experiment_id, is_answered=False
    ).exists()


def slot_for_update(*, slot_id: int) -> Slot:
    return Slot.objects.select_for_update(of=("self",)).get(pk=slot_id)


def slot_of_task_claimable_for_update(*, task_id: int, now: datetime) -> Slot | None:
    """A free (or expired) slot of one task, locked; rows being claimed are skipped."""
    return (
        Slot.objects.filter(_claimable(now), task_id=task_id)
        .order_by("number")
        .select_for_update(skip_locked=True, of=("self",))
        .first()
    )


def slots_expired_for_update(*, now: datetime, limit: int) -> list[int]:
    """Ids of leased slots whose lease ran out, locked; rows in use are skipped."""
    return list(
        Slot.objects.filter(is_answered=False, lease_expires_at__lte=now)
        .order_by("lease_expires_at")
        .select_for_update(skip_locked=True, of=("self",))
        .values_list("pk", flat=True)[:limit]
    )
