"""The row-locking queries of the allocation engine (STYLE §4).

Every function here must run inside ``transaction.atomic()``; the row locks
are held until that transaction ends, so keep it short. On SQLite (the
laptop default) ``select_for_update`` is a no-op and the settings' IMMEDIATE
transactions serialise writers instead, which is correct, only slower.
"""

from __future__ import annotations

import functools
import time
from datetime import datetime

from django.db import connection
from django.db.models import Q

from apps.core import rawsql
from apps.studies.allocation.claimant import Claimant
from apps.studies.models import Assignment, Experiment, Participation, Response, Slot, Study


def _claimable(now: datetime) -> Q:
    """Unanswered, and free or leased until ``now`` at the latest (an expired lease)."""
    return Q(is_answered=False) & (Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now))


# Per process: for each experiment (by its code, unique for ever), a rank below
# which no slot is unanswered any more. Answered slots leave the partial index
# ``slot_open_by_rank`` only when VACUUM runs; until then a scan from rank 0
# steps over every answered slot's old index entries (measured: 4,400 buffers
# for "anything left?" at the end of a 1,000-task study). The smallest
# unanswered rank never goes down (no slot becomes unanswered again), so a
# floor read at any time stays valid for ever and scans may start there.
_FLOORS: dict[str, tuple[int, float]] = {}
FLOOR_REFRESH_SECONDS = 1.0


def _rank_floor(claimant: Claimant) -> int:
    floor, read_at = _FLOORS.get(claimant.experiment_code, (0, float("-inf")))
    if time.monotonic() - read_at >= FLOOR_REFRESH_SECONDS:
        row = rawsql.fetch_one(_floor_sql(), [claimant.experiment_id, floor])
        floor = row[0] if row is not None else floor
        _FLOORS[claimant.experiment_code] = (floor, time.monotonic())
    return floor


@functools.cache
def _floor_sql() -> str:
    return (
        f"SELECT rank FROM {rawsql.table(Slot)} WHERE experiment_id = %s AND NOT is_answered"
        " AND rank >= %s ORDER BY rank LIMIT 1"
    )


@functools.cache
def _eligible_sql(*, one_per_image: bool, across_study: bool, claimable_only: bool) -> str:
    """Slots of the experiment that the claimant may get, from the rank floor on.

    Never a task twice (NOT EXISTS on the rater's assignments by task) or,
    with one task per image, never an image twice in the experiment (by
    image, which implies by task); across a study never an image from any
    of its experiments. ``claimable_only``: free or expired, else any
    unanswered slot (leased ones included).
    """
    slot, assignment = rawsql.table(Slot), rawsql.table(Assignment)
    participation, experiment = rawsql.table(Participation), rawsql.table(Experiment)
    seen = (
        f"NOT EXISTS (SELECT 1 FROM {assignment} a WHERE a.participation_id = %(participation)s"
        " AND a.image_id = s.image_id)"
        if one_per_image
        else f"NOT EXISTS (SELECT 1 FROM {assignment} a WHERE a.rater_id = %(rater)s"
        " AND a.task_id = s.task_id)"
    )
    elsewhere = (
        f" AND NOT EXISTS (SELECT 1 FROM {participation} p JOIN {experiment} e"
        f" ON e.id = p.experiment_id JOIN {assignment} a ON a.participation_id = p.id"
        " WHERE p.rater_id = %(rater)s AND e.study_id = %(study)s AND a.image_id = s.image_id)"
        if across_study
        else ""
    )
    lease = (
        " AND (s.lease_expires_at IS NULL OR s.lease_expires_at <= %(now)s)"
        if claimable_only
        else ""
    )
    return (
        f"SELECT s.id FROM {slot} s WHERE s.experiment_id = %(experiment)s"
        f" AND s.rank >= %(floor)s AND NOT s.is_answered{lease} AND {seen}{elsewhere}"
        " ORDER BY s.rank LIMIT 1"
    )


@functools.cache
def _claim_sql(*, one_per_image: bool, across_study: bool, skip_locked: str) -> str:
    """Lease the first claimable slot in rank order, in one statement.

    ``UPDATE … WHERE id = (SELECT … ORDER BY rank LIMIT 1 FOR UPDATE SKIP
    LOCKED) RETURNING …``; the same text runs on SQLite without the lock
    clause (``skip_locked`` is empty there: SQLite serialises writers).
    """
    eligible = _eligible_sql(
        one_per_image=one_per_image, across_study=across_study, claimable_only=True
    )
    return (
        f"UPDATE {rawsql.table(Slot)} SET holder_id = %(participation)s,"
        f" lease_expires_at = %(expires)s WHERE id = ({eligible} {skip_locked})"
        " RETURNING id, task_id, image_id"
    )


def _insert_from(model, computed: dict[str, str]) -> tuple[str, str]:
    """Column list and SELECT list of an INSERT … SELECT of ``model``: ``computed``
    columns (by attname) come from the CTE, the others from ``%(attname)s``."""
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(rawsql.qn(f.column) for f in fields)
    values = ", ".join(computed.get(f.attname, f"%({f.attname})s") for f in fields)
    return columns, values


@functools.cache
def _claim_and_record_sql(*, one_per_image: bool, across_study: bool) -> str:
    """PostgreSQL: the claim and the assignment row in one statement (a writing CTE)."""
    claim = _claim_sql(
        one_per_image=one_per_image, across_study=across_study, skip_locked="FOR UPDATE SKIP LOCKED"
    )
    columns, values = _insert_from(
        Assignment, {"task_id": "task_id", "image_id": "image_id", "slot_id": "id"}
    )
    return (
        f"WITH leased AS ({claim}) INSERT INTO {rawsql.table(Assignment)} ({columns})"
        f" SELECT {values} FROM leased RETURNING id, task_id, image_id, slot_id"
    )


def _params(claimant: Claimant, **extra: object) -> dict[str, object]:
    return {
        "participation": claimant.participation_id,
        "rater": claimant.rater_id,
        "experiment": claimant.experiment_id,
        "study": claimant.across_study_id,
        "floor": _rank_floor(claimant),
        **extra,
    }


def slot_lease_first_claimable(
    *, claimant: Claimant, now: datetime, expires: datetime
) -> tuple[int, int, int] | None:
    """Lease the first claimable slot ``claimant`` may get until ``expires``: (slot, task, image).

    One ordered walk of the partial index ``slot_open_by_rank`` from the rank
    floor that stops at the first row passing the filters: O(log n) to find
    the start, then as many rows as are leased, being claimed right now
    (``SKIP LOCKED`` steps over them instead of queueing) or excluded for
    this rater, which is bounded by the number of raters and the rater's own
    history, not by the number of tasks. The lease is written on the locked
    row by the same statement, so no concurrent claim can take it too: a
    claim that read the row before this commit re-checks it when it tries to
    lock it, finds it leased and moves on. ``None`` when nothing is claimable
    for ``claimant`` now.
    """
    sql = _claim_sql(
        one_per_image=claimant.one_per_image,
        across_study=claimant.across_study_id is not None,
        skip_locked="FOR UPDATE SKIP LOCKED"
        if connection.features.has_select_for_update_skip_locked
        else "",
    )
    as_db = connection.ops.adapt_datetimefield_value
    return rawsql.fetch_one(sql, _params(claimant, now=as_db(now), expires=as_db(expires)))


def slot_lease_and_record(
    *, claimant: Claimant, now: datetime, expires: datetime, assignment: dict[str, object]
) -> tuple[int, int, int, int] | None:
    """PostgreSQL only: ``slot_lease_first_claimable`` and the INSERT of the assignment
    (``assignment``: its columns other than the slot's task, image and id, by
    attname) in one round trip; (assignment id, task, image, slot) or ``None``."""
    sql = _claim_and_record_sql(
        one_per_image=claimant.one_per_image, across_study=claimant.across_study_id is not None
    )
    return rawsql.fetch_one(sql, _params(claimant, now=now, expires=expires, **assignment))


@functools.cache
def _fill_and_store_sql() -> str:
    """PostgreSQL: fill the slot held with a live lease and insert the answer into it."""
    columns, values = _insert_from(Response, {"slot_id": "filled.id"})
    return (
        f"WITH filled AS (UPDATE {rawsql.table(Slot)} SET is_answered = TRUE,"
        " lease_expires_at = NULL WHERE id = %(slot)s AND holder_id = %(holder)s"
        " AND NOT is_answered AND lease_expires_at > %(now)s RETURNING id)"
        f" INSERT INTO {rawsql.table(Response)} ({columns}) SELECT {values} FROM filled"
        " RETURNING id"
    )


def slot_fill_on_time_and_store(
    *, slot_id: int, participation_id: int, now: datetime, response: dict[str, object]
) -> int | None:
    """PostgreSQL only: the on-time fill and the INSERT of the answer (``response``:
    its columns but the slot, by attname) in one round trip; the response id, or
    ``None`` when the slot is not held with a live lease (nothing is written)."""
    row = rawsql.fetch_one(
        _fill_and_store_sql(),
        {"slot": slot_id, "holder": participation_id, "now": now, **response},
    )
    return row[0] if row else None


def slot_unanswered_exists(*, claimant: Claimant) -> bool:
    """Whether any unanswered slot (free or leased) is left that ``claimant`` may get.

    Asked only when a claim found nothing: True means "wait, leases may
    free up", False means "nothing is left for you".
    """
    sql = _eligible_sql(
        one_per_image=claimant.one_per_image,
        across_study=claimant.across_study_id is not None,
        claimable_only=False,
    )
    return rawsql.fetch_one(sql, _params(claimant)) is not None


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
    """Ids of leased slots whose lease ran out, locked; rows in use are skipped.

    Only experiments that hand out tasks (live or paused studies): their
    unanswered slots are found through ``slot_open_by_rank``; the lease
    columns themselves are not indexed (see ``Slot``).
    """
    open_experiments = list(
        Experiment.objects.filter(
            study__status__in=[Study.Status.LIVE, Study.Status.PAUSED]
        ).values_list("pk", flat=True)
    )
    return list(
        Slot.objects.filter(
            experiment_id__in=open_experiments, is_answered=False, lease_expires_at__lte=now
        )
        .select_for_update(skip_locked=True, of=("self",))
        .values_list("pk", flat=True)[:limit]
    )
