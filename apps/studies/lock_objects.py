"""Row-locking queries, kept in one place (see STYLE.md §4).

Every function here must be called inside ``transaction.atomic()``; the locks
are held until that transaction ends, so keep it short.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, F, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from apps.studies.models import Assignment, Participation, Task


def live_leases_subquery(*, now: datetime) -> Coalesce:
    """Number of unexpired active assignments of the outer task.

    A correlated subquery, not an aggregate: PostgreSQL refuses FOR UPDATE
    together with GROUP BY.
    """
    leases = (
        Assignment.objects.filter(
            task=OuterRef("pk"), status=Assignment.Status.ACTIVE, expires_at__gt=now
        )
        .order_by()
        .values("task")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(leases, output_field=IntegerField()), Value(0))


def tasks_claimable_for_update(
    *, participation: Participation, now: datetime, exclude_image_ids: QuerySet | None = None
) -> QuerySet[Task]:
    """Open tasks of the participation's experiment, least-answered first, locked.

    ``skip_locked`` lets concurrent raters pass over a task another rater is
    claiming right now instead of queueing behind it; ``of=("self",)`` locks
    only task rows. A task is open while answers plus live leases < quota.
    """
    qs = (
        Task.objects.filter(experiment_id=participation.experiment_id)
        .exclude(assignments__rater_id=participation.rater_id)
        .annotate(live_leases=live_leases_subquery(now=now))
        .annotate(load=F("responses_received") + F("live_leases"))
        .filter(load__lt=F("quota"))
    )
    if exclude_image_ids is not None:
        qs = qs.exclude(image_id__in=exclude_image_ids)
    return qs.order_by("load", "position").select_for_update(skip_locked=True, of=("self",))


def assignment_for_update(*, public_id: str) -> Assignment:
    return Assignment.objects.select_for_update(of=("self",)).get(public_id=public_id)


def task_for_update(*, task_id: int) -> Task:
    return Task.objects.select_for_update(of=("self",)).get(pk=task_id)
