"""Row locks of the rater loop outside the allocation engine (STYLE §4).

Call inside ``transaction.atomic()``; the lock is held until it ends. The
statement is hand-written (:mod:`apps.core.rawsql`): it runs on every rater
request, where the ORM's query building cost more than the query.
"""

from __future__ import annotations

import functools

from django.db import connection

from apps.core import rawsql
from apps.pipeline.models import ModelFamily
from apps.studies.models import Experiment, Participation, Study

# Only what the rater loop reads; the other fields are deferred (loaded if ever touched).
_PARTICIPATION = rawsql.Columns(
    Participation,
    "p",
    ["id", "rater", "experiment", "status", "target", "answered", "current_assignment",
     "completion_code", "completed_at", "updated_at", "next_check_after", "checks_planned",
     "checks_answered", "excluded_at"],
)  # fmt: skip
_EXPERIMENT = rawsql.Columns(
    Experiment,
    "e",
    ["id", "study", "kind", "scale_points", "lease_seconds", "one_task_per_image", "code",
     "min_viewing_ms"],
)  # fmt: skip
_STUDY = rawsql.Columns(
    Study, "s", ["id", "status", "family", "one_task_per_image_across_experiments"]
)
_FAMILY = rawsql.Columns(ModelFamily, "f", ["id", "class_names"])


@functools.cache
def _participation_sql(lock: str) -> str:
    return (
        f"SELECT {_PARTICIPATION.sql}, {_EXPERIMENT.sql}, {_STUDY.sql}, {_FAMILY.sql}"
        f" FROM {rawsql.table(Participation)} p"
        f" JOIN {rawsql.table(Experiment)} e ON e.id = p.experiment_id"
        f" JOIN {rawsql.table(Study)} s ON s.id = e.study_id"
        f" JOIN {rawsql.table(ModelFamily)} f ON f.id = s.family_id"
        f" WHERE p.id = %s {lock}"
    )


def participation_for_update(*, participation_id: int) -> Participation:
    """The participation with its experiment, study and family's class names, the row locked.

    Every write of the rater loop takes this lock first, so one rater's
    concurrent requests (double clicks, two tabs) run one after the other.

    Never join a row here that those requests write (``current_assignment``):
    a statement that waited for the lock re-reads the locked row but not the
    joined ones, so a join would pair the new ``current_assignment_id`` with
    the row as it was before (PostgreSQL READ COMMITTED).
    """
    lock = "FOR UPDATE OF p" if connection.features.has_select_for_update_of else ""
    row = rawsql.fetch_one(_participation_sql(lock), [participation_id])
    if row is None:
        raise Participation.DoesNotExist(f"participation {participation_id}")
    participation, experiment, study, family = rawsql.read(
        row, _PARTICIPATION, _EXPERIMENT, _STUDY, _FAMILY
    )
    study.family = family
    experiment.study = study
    participation.experiment = experiment
    return participation
