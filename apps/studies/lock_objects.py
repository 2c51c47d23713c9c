"""Row locks of the rater loop outside the allocation engine (STYLE §4).

Call inside ``transaction.atomic()``; the lock is held until it ends.
"""

from __future__ import annotations

from apps.studies.models import Participation


def participation_for_update(*, participation_id: int) -> Participation:
    """The participation with its experiment, study and family, the row locked.

    Every write of the rater loop takes this lock first, so one rater's
    concurrent requests (double clicks, two tabs) run one after the other.

    Never join a row here that those requests write (``current_assignment``):
    a statement that waited for the lock re-reads the locked row but not the
    joined ones, so a join would pair the new ``current_assignment_id`` with
    the row as it was before, i.e. none (PostgreSQL READ COMMITTED).
    """
    return (
        Participation.objects.select_related("experiment__study__family")
        .select_for_update(of=("self",))
        .get(pk=participation_id)
    )
