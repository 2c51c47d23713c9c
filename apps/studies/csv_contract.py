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
    "check_kind",
    "probe_of",
    "expected",
    "reopened",
)
# The flags and the check columns came later (README "Response CSV"): a file
# without them still loads; every answer then counts as on time, within quota,
# a real task (no check, no probe) and not reopened.
FLAG_COLUMNS: tuple[str, ...] = ("late", "over_quota")
CHECK_COLUMNS: tuple[str, ...] = ("check_kind", "probe_of", "expected", "reopened")
REQUIRED_COLUMNS: tuple[str, ...] = RESPONSE_COLUMNS[: -len(FLAG_COLUMNS) - len(CHECK_COLUMNS)]

# ``check_kind``: "" for a real task, or one of these. Check rows (and probe
# rows, ``probe_of`` set) never enter the study's tables.
CHECK_ATTENTION = "attention"  # instructed response: correct iff answer == expected
CHECK_CATCH = "catch"  # known answer: pairwise, expected "a" (any answer for A is right);
# forced choice, expected is the image class
CHECK_KINDS: tuple[str, ...] = ("", CHECK_ATTENTION, CHECK_CATCH)
EXPECTED_A = "a"
