"""The row-locking queries of the allocation engine (STYLE §4).

Every function here must run inside ``transaction.atomic()``; the row locks
are held until that transaction ends, so keep it short. On SQLite (the
laptop default) ``select_for_update`` is a no-op and the settings' IMMEDIATE
transactions serialise writers instead, which is correct, only slower.
"""

from __future__ import annotations

import functools
from datetime import datetime

from django.db import connection
from django.db.models import Exists, OuterRef, Q

from apps.core import rawsql
from apps.studies.allocation.claimant import Claimant
from apps.studies.models import Assignment, Experiment, Slot


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


@functools.cache
def _claim_sql(*, one_per_image: bool, across_study: bool, skip_locked: str) -> str:
    """The claim statement: lease the first eligible slot in rank order, in one round trip.

    ``UPDATE … WHERE id = (SELECT … ORDER BY rank LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING …``; the same text runs on SQLite without the lock clause
    (``skip_locked`` is empty there: SQLite serialises writers).
    """
    slot, assignment = Slot._meta.db_table, Assignment._meta.db_table
    experiment = Experiment._meta.db_table
    seen = (
        f"NOT EXISTS (SELECT 1 FROM {assignment} a WHERE a.participation_id = %(participation)s"
        " AND a.image_id = s.image_id)"
        if one_per_image
        else f"NOT EXISTS (SELECT 1 FROM {assignment} a WHERE a.rater_id = %(rater)s"
        " AND a.task_id = s.task_id)"
    )
    elsewhere = (
        f" AND NOT EXISTS (SELECT 1 FROM {assignment} a JOIN {experiment} e"
        " ON e.id = a.experiment_id WHERE a.rater_id = %(rater)s AND a.image_id = s.image_id"
        " AND e.study_id = %(study)s)"
        if across_study
        else ""
    )
    return (
        f"UPDATE {slot} SET holder_id = %(participation)s, lease_expires_at = %(expires)s"
        f" WHERE id = (SELECT s.id FROM {slot} s WHERE s.experiment_id = %(experiment)s"
        " AND NOT s.is_answered AND (s.lease_expires_at IS NULL OR s.lease_expires_at <= %(now)s)"
        f" AND {seen}{elsewhere} ORDER BY s.rank LIMIT 1 {skip_locked})"
        " RETURNING id, task_id, image_id"
    )


def slot_lease_first_claimable(
    *, claimant: Claimant, now: datetime, expires: datetime
) -> tuple[int, int, int] | None:
    """Lease the first claimable slot ``claimant`` may get until ``expires``: (slot, task, image).

    One ordered walk of the partial index ``slot_open_by_rank`` that stops at
    the first row passing the filters: O(log n) to find the start, then as
    many rows as are leased, being claimed right now (``SKIP LOCKED`` steps
    over them instead of queueing) or excluded for this rater, which is
    bounded by the number of raters and the rater's own history, not by the
    number of tasks. The lease is written on the locked row by the same
    statement, so no concurrent claim can take it too: a claim that read the
    row before this commit re-checks it when it tries to lock it, finds it
    leased and moves on. ``None`` when nothing is claimable for ``claimant`` now.
    """
    features = connection.features
    sql = _claim_sql(
        one_per_image=claimant.one_per_image,
        across_study=claimant.across_study_id is not None,
        skip_locked="FOR UPDATE SKIP LOCKED" if features.has_select_for_update_skip_locked else "",
    )
    as_db = connection.ops.adapt_datetimefield_value
    params = {
        "participation": claimant.participation_id,
        "rater": claimant.rater_id,
        "experiment": claimant.experiment_id,
        "study": claimant.across_study_id,
        "now": as_db(now),
        "expires": as_db(expires),
    }
    return rawsql.fetch_one(sql, params)


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
