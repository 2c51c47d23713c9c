"""Check rows of the response CSV: attention checks, catch trials, consistency probes.

The contract (:mod:`apps.studies.csv_contract`, README "Response CSV"):

* ``check_kind`` ``attention``: an instructed-response item shown on a task the
  rater already answered (same ``task_id`` as that answer); ``expected`` is the
  exact ``answer`` the question named. Correct iff ``answer == expected``
  (pairwise: as integers).
* ``check_kind`` ``catch`` (or the older ``is_catch``): a task with a known
  answer. Pairwise: ``expected`` is ``a`` (condition_a's map is the real one,
  condition_b the same map rotated; any answer > 0 is right); the older
  ``catch_expected`` column gives a number whose sign is the right one.
  Forced choice: ``expected`` is the image class (older files: the row's
  ``image_class``).
* ``probe_of`` set (``check_kind`` empty): the rater's answer to ``probe_of``
  (the same ``task_id``, sides swapped on pairwise) asked again.

These rows are split off before the checks that only real tasks satisfy, and
end in ``Responses.checks`` (:func:`check_frame`), never in the tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from apps.studies.csv_contract import CHECK_ATTENTION, CHECK_CATCH, CHECK_KINDS, EXPECTED_A

from .errors import AnalysisInputError

ATTENTION, CATCH, PROBE = CHECK_ATTENTION, CHECK_CATCH, "probe"
IDK = "idk"
_INT = re.compile(r"^[+-]?\d+$")

CHECK_FRAME_COLUMNS: tuple[str, ...] = (
    "row",  # 1-based data row of the file
    "experiment",
    "task_id",
    "rater",
    "rater_source",
    "kind",  # attention | catch | probe
    "pairwise",  # bool
    "shown_left_a",
    "value",  # pairwise answer from condition_a's view
    "answer",
    "answer_raw",
    "response_ms",
    "image_class",
    "excluded_flag",
    "expected",  # attention: the instructed answer; catch: "a" or the class ("" unscored)
    "catch_expected",  # pairwise catch: the sign of the right answer (NaN: unscored)
    "original_row",  # probe: the data row of the answer it repeats (0: none)
    "original_value",  # probe, pairwise: that answer's value
    "original_answer",  # probe: that answer's text
)


@dataclass(frozen=True)
class RowKinds:
    """Per-row masks of the file (length n) and the ``expected``/``probe_of`` values."""

    attention: np.ndarray
    catch: np.ndarray  # check_kind catch or is_catch
    catch_new: np.ndarray  # check_kind catch (expected required)
    probe: np.ndarray
    expected: np.ndarray  # object, stripped strings ("" when absent)
    probe_of: np.ndarray  # object, stripped strings ("" when absent)

    @property
    def check(self) -> np.ndarray:
        return self.attention | self.catch

    @property
    def table(self) -> np.ndarray:
        """Real tasks: the only rows that enter the study's tables."""
        return ~self.check & ~self.probe


def _fail(mask: np.ndarray, column: str, message, source: str) -> None:
    """Raise at the first row of ``mask``; ``message`` may be a callable(row index)."""
    bad = np.flatnonzero(mask)
    if len(bad):
        i = int(bad[0])
        text = message(i) if callable(message) else message
        raise AnalysisInputError(text, row=i + 1, column=column, source=source)


def _values(cols: dict, name: str, n: int) -> np.ndarray:
    return cols[name].values() if name in cols else np.full(n, "", dtype=object)


def row_kinds(cols: dict, is_catch: np.ndarray, n: int, source: str) -> RowKinds:
    """Classify the rows; errors for an unknown kind or a row that is two kinds at once."""
    attention = np.zeros(n, bool)
    catch_new = np.zeros(n, bool)
    if "check_kind" in cols:
        ck = cols["check_kind"]
        _fail(
            ck.mask_of(lambda v: v not in CHECK_KINDS),
            "check_kind",
            lambda i: (
                f"unknown check_kind {ck.values()[i]!r} (expected empty, "
                f"{CHECK_ATTENTION!r} or {CHECK_CATCH!r})"
            ),
            source,
        )
        attention = ck.mask_of(lambda v: v == CHECK_ATTENTION)
        catch_new = ck.mask_of(lambda v: v == CHECK_CATCH)
    _fail(
        is_catch & attention,
        "is_catch",
        "is_catch is set on an attention check (a row is one kind of check)",
        source,
    )
    probe_of = _values(cols, "probe_of", n)
    probe = probe_of != ""
    catch = catch_new | is_catch
    _fail(
        probe & (attention | catch),
        "probe_of",
        "a check row (check_kind attention or catch) cannot also be a probe; a probe has "
        "an empty check_kind",
        source,
    )
    return RowKinds(
        attention=attention,
        catch=catch,
        catch_new=catch_new,
        probe=probe,
        expected=_values(cols, "expected", n),
        probe_of=probe_of,
    )


def probe_originals(
    kinds: RowKinds, key: np.ndarray, answer_row: np.ndarray, cols: dict, source: str
) -> np.ndarray:
    """Row index of the answer each probe repeats (-1 for other rows).

    ``key`` identifies (experiment, task_id, rater); ``answer_row`` marks the rows
    a probe may repeat (real tasks and catch trials: one per rater and task).
    """
    n = len(key)
    original = np.full(n, -1, dtype=np.int64)
    probes = np.flatnonzero(kinds.probe)
    if not len(probes):
        return original
    task_ids = cols["task_id"].values()
    _fail(
        kinds.probe & (kinds.probe_of != task_ids),
        "probe_of",
        lambda i: (
            f"probe_of {kinds.probe_of[i]!r} is not the row's own task_id "
            f"{task_ids[i]!r} (a probe shows the task it repeats)"
        ),
        source,
    )
    answers = np.flatnonzero(answer_row)
    answers = answers[np.argsort(key[answers], kind="stable")]
    sorted_keys = key[answers]
    pos = np.searchsorted(sorted_keys, key[probes])
    pos_ok = np.minimum(pos, max(len(answers) - 1, 0))
    found = (pos < len(answers)) & (sorted_keys[pos_ok] == key[probes]) if len(answers) else pos < 0
    missing = np.zeros(n, bool)
    missing[probes[~found]] = True
    _fail(
        missing,
        "probe_of",
        lambda i: (
            f"probe_of {kinds.probe_of[i]!r} points to no answer of this rater to that "
            "task in this experiment (a probe repeats one of the rater's answers)"
        ),
        source,
    )
    original[probes] = answers[pos_ok]
    return original


def check_answers(kinds: RowKinds, in_exp: np.ndarray, img_cls, cols: dict) -> set[str]:
    """Answers a forced-choice check may carry besides the experiment's classes (when the
    study's classes are not given): the instructed answers and the catch images' classes."""
    rows = in_exp & kinds.check
    out = set(kinds.expected[rows]) | set(img_cls.values()[rows & kinds.catch])
    out.discard("")
    return out


def validate_expected(
    kinds: RowKinds,
    cols: dict,
    *,
    pairwise: np.ndarray,
    k: np.ndarray,
    classes,
    source: str,
) -> None:
    """``expected`` on check rows: present, and an answer the item could be scored by."""
    exp = kinds.expected
    needs = kinds.attention | kinds.catch_new
    _fail(
        needs & (exp == ""),
        "expected",
        lambda i: (
            "expected is empty on an attention check (the answer the question instructed "
            "is needed to score it)"
            if kinds.attention[i]
            else "expected is empty on a catch trial (the known answer is needed to score it)"
        ),
        source,
    )
    is_int = np.fromiter((bool(_INT.match(x)) for x in exp), bool, len(exp))
    as_int = np.fromiter((int(x) if _INT.match(x) else 0 for x in exp), np.int64, len(exp))
    _fail(
        kinds.attention & pairwise & (~is_int | (np.abs(as_int) > k)),
        "expected",
        lambda i: (
            f"expected {exp[i]!r} is not an answer of this scale (an integer "
            f"-{k[i]}..+{k[i]}, from condition_a's view)"
        ),
        source,
    )
    _fail(
        kinds.catch & pairwise & (exp != "") & (exp != EXPECTED_A),
        "expected",
        lambda i: (
            f"expected {exp[i]!r} on a pairwise catch trial must be {EXPECTED_A!r} "
            "(condition_a's map is the real one)"
        ),
        source,
    )
    if classes is not None:
        allowed = set(classes)
        answers = np.fromiter((x in allowed for x in exp), bool, len(exp))
        _fail(
            ~pairwise
            & (exp != "")
            & ((kinds.attention & ~answers & (exp != IDK)) | (kinds.catch & ~answers)),
            "expected",
            lambda i: f"expected {exp[i]!r} is not one of the study's classes",
            source,
        )


def empty_frame() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in CHECK_FRAME_COLUMNS})


def check_frame(
    kinds: RowKinds,
    columns: dict[str, Any],
    *,
    pairwise: np.ndarray,
    catch_expected: np.ndarray,
    original: np.ndarray,
) -> pd.DataFrame:
    """The check and probe rows, with what scoring them needs (see CHECK_FRAME_COLUMNS)."""
    sel = kinds.check | kinds.probe
    if not sel.any():
        return empty_frame()
    kind = np.where(kinds.attention, ATTENTION, np.where(kinds.catch, CATCH, PROBE))
    expected = kinds.expected.copy()
    image_class = np.asarray(columns["image_class"], dtype=object)
    # Older forced-choice catch rows: the image class is the answer.
    older_fc = kinds.catch & ~pairwise & (expected == "")
    expected[older_fc] = image_class[older_fc]
    sign = np.where(kinds.catch & pairwise & (expected == EXPECTED_A), 1.0, catch_expected)
    has = original >= 0
    idx = np.where(has, original, 0)
    value = np.asarray(columns["value"])
    answer = np.asarray(columns["answer"], dtype=object)
    picked = {
        name: columns[name]
        for name in (
            "row",
            "experiment",
            "task_id",
            "rater",
            "rater_source",
            "shown_left_a",
            "value",
            "answer",
            "answer_raw",
            "response_ms",
            "image_class",
            "excluded_flag",
        )
    }
    picked.update(
        kind=pd.Categorical(kind, categories=[ATTENTION, CATCH, PROBE]),
        pairwise=pairwise,
        expected=expected,
        catch_expected=np.where(kinds.catch & pairwise, sign, np.nan),
        original_row=np.where(has, idx + 1, 0),
        original_value=np.where(has, value[idx], 0).astype(np.int8),
        original_answer=np.where(has, answer[idx], ""),
    )
    frame = pd.DataFrame({name: picked[name][sel] for name in CHECK_FRAME_COLUMNS})
    return frame.reset_index(drop=True)
