"""The response CSV's columns: written by :mod:`apps.studies.exports`, read by the
analysis engine (:mod:`apps.analysis.engine.loading`). No Django imports, so the
engine stays usable on a CSV alone. README "Response CSV" documents each column.
"""

from __future__ import annotations

RESPONSE_COLUMNS: tuple[str, ...] = (
    "study",
    "experiment",
    "experiment_kind",
    "scale_points",
    "task_id",
    "image_id",
    "image_class",
    "rater_id",
    "rater_source",
    "condition_a",
    "condition_b",
    "shown_left",
    "answer",
    "answer_raw",
    "response_ms",
    "submitted_at",
    "late",
    "over_quota",
)
# The two flags came later (README "Response CSV"): a file without them still
# loads, every answer then counts as on time and within quota.
FLAG_COLUMNS: tuple[str, ...] = ("late", "over_quota")
REQUIRED_COLUMNS: tuple[str, ...] = RESPONSE_COLUMNS[: -len(FLAG_COLUMNS)]
