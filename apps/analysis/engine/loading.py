"""Read and validate the response CSV (the study app's export contract).

Every column is read as a pandas categorical, so validation works on the few
distinct values of a column and maps back to rows through the integer codes:
a million rows validate in well under a second and strings are stored once.
Any problem raises :class:`AnalysisInputError` naming the first offending data
row (1-based) and the column; nothing is silently dropped or coerced.

Check rows (``check_kind`` attention or catch, or the older ``is_catch``) and
consistency probes (``probe_of`` set) are split off into ``Responses.checks``
*before* the checks that only hold for real tasks (two different conditions,
condition_a the lower CPR, one answer per rater and task, known conditions):
an attention check repeats a task the rater already answered, a pairwise catch
shows one condition on both sides. They never reach ``Responses.df``, the
rows every table is computed from; :mod:`.checks` validates and scores them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from apps.studies.csv_contract import CHECK_COLUMNS, FLAG_COLUMNS
from apps.studies.csv_contract import REQUIRED_COLUMNS as _CONTRACT_REQUIRED

from . import checks as _checks
from .conditions import LABEL, sort_conditions
from .errors import AnalysisInputError

REQUIRED_COLUMNS: tuple[str, ...] = _CONTRACT_REQUIRED  # the export's contract
# Optional columns the engine understands; any other extra column is ignored.
# late / over_quota: written by every export since the allocation engine;
# older files without them load with both false. check_kind / probe_of /
# expected / reopened: the check items (README "Response CSV"); older files
# without them hold real tasks only. is_catch / catch_expected / excluded: the
# first catch-trial format, still read.
OPTIONAL_COLUMNS: tuple[str, ...] = (
    "is_catch",
    "excluded",
    "catch_expected",
    *FLAG_COLUMNS,
    *CHECK_COLUMNS,
)
# submitted_at is required in the header but its values are not used by any table.
_UNUSED = {"submitted_at", "study"}

PAIRWISE = "pairwise"
FORCED_CHOICE = "forced_choice"
IDK = "idk"
RATER_SOURCES = {"link", "prolific", "mturk"}
_TRUE = {"1", "true", "t", "yes", "y"}
_FALSE = {"0", "false", "f", "no", "n", ""}
_INT = re.compile(r"^[+-]?\d+$")


@dataclass(frozen=True)
class ExperimentInfo:
    name: str
    kind: str  # PAIRWISE | FORCED_CHOICE
    scale_points: int | None  # 3, 5, 7 for pairwise
    conditions: tuple[str, ...]  # ordered by CPR, then name
    classes: tuple[str, ...] = ()  # forced choice: the answerable classes (sorted)

    @property
    def k(self) -> int:
        """Half-width of the pairwise scale: answers run from -k to +k."""
        return (self.scale_points - 1) // 2 if self.scale_points else 0


@dataclass
class Responses:
    """Validated answers, one row per answer, plus per-experiment facts.

    ``df``: the real task answers, the only rows any table is computed from.
    Columns: row (1-based data row), experiment, task (int, unique over
    experiments), task_id, rater, rater_source, condition_a, condition_b,
    shown_left_a (bool), value (int8: pairwise answer from condition_a's view),
    answer (categorical: the answer text), answer_raw, response_ms (float),
    image_id, image_class, excluded_flag (bool), late (bool), over_quota (bool:
    a late answer kept outside the task's quota), reopened (bool: the rater was
    excluded while the study ran and the answer's slot went to someone else).
    Over-quota and reopened rows stay here (rater quality counts them); the
    runner leaves them out of the tables.

    ``checks``: attention checks, catch trials and consistency probes, one row
    each, for rater quality only (columns: :data:`.checks.CHECK_FRAME_COLUMNS`).
    """

    df: pd.DataFrame
    experiments: dict[str, ExperimentInfo] = field(default_factory=dict)
    source: str = ""
    checks: pd.DataFrame = field(default_factory=lambda: _checks.empty_frame())


class _Col:
    """A categorical column as integer codes plus stripped string labels."""

    def __init__(self, name: str, series: pd.Series) -> None:
        self.name = name
        cat = series.astype("category") if series.dtype.name != "category" else series
        labels = np.asarray(cat.cat.categories.astype(str).str.strip(), dtype=object)
        codes = cat.cat.codes.to_numpy()
        if len(labels) == 0:
            self.labels = np.array([""], dtype=object)
            self.codes = np.zeros(len(codes), dtype=np.int32)
            return
        uniq, inv = np.unique(labels.astype(str), return_inverse=True)
        self.labels = uniq.astype(object)
        self.codes = inv.astype(np.int32)[codes]

    def mask_of(self, predicate) -> np.ndarray:
        """Row mask of rows whose label satisfies ``predicate`` (called per label)."""
        ok = np.fromiter((bool(predicate(x)) for x in self.labels), bool, len(self.labels))
        return ok[self.codes]

    def values(self) -> np.ndarray:
        return self.labels[self.codes]

    def categorical(self) -> pd.Categorical:
        return pd.Categorical.from_codes(self.codes, categories=pd.Index(self.labels, dtype=object))


def _fail_first(mask: np.ndarray, column: str, message, source: str, col: _Col | None = None):
    """Raise for the first row where ``mask`` is True; ``message`` may be a callable(label)."""
    bad = np.flatnonzero(mask)
    if len(bad):
        i = int(bad[0])
        text = message(col.labels[col.codes[i]]) if callable(message) else message
        raise AnalysisInputError(text, row=i + 1, column=column, source=source)


def _read_frame(df_or_path, source: str) -> pd.DataFrame:
    if isinstance(df_or_path, pd.DataFrame):
        frame = df_or_path
        missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
        if missing:
            raise AnalysisInputError(
                f"missing required column(s): {', '.join(missing)}",
                column=missing[0],
                source=source,
            )
        wanted = [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in frame.columns]
        out = {}
        for c in wanted:
            s = frame[c]
            if pd.api.types.is_float_dtype(s) and np.all(np.isfinite(s) & (s == np.round(s))):
                s = s.astype(np.int64)
            out[c] = s.astype(object).where(s.notna(), "").astype(str).astype("category")
        return pd.DataFrame(out)
    path = Path(df_or_path)
    try:
        header = pd.read_csv(path, nrows=0).columns.str.strip().tolist()
    except pd.errors.EmptyDataError as exc:
        raise AnalysisInputError("the file is empty (no header line)", source=source) from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise AnalysisInputError(
            f"missing required column(s): {', '.join(missing)}; header is {header}",
            row=None,
            column=missing[0],
            source=source,
        )
    wanted = [c for c in header if (c in REQUIRED_COLUMNS or c in OPTIONAL_COLUMNS)]
    wanted = [c for c in wanted if c not in _UNUSED]
    try:
        frame = pd.read_csv(
            path,
            usecols=lambda c: c.strip() in wanted,
            dtype="category",
            na_filter=False,
            skipinitialspace=False,
        )
    except pd.errors.ParserError as exc:
        # pandas names the line ("Expected 16 fields in line 7, saw 17").
        raise AnalysisInputError(f"malformed CSV: {exc}", source=source) from exc
    frame.columns = frame.columns.str.strip()
    return frame


def _truthy(col: _Col, source: str) -> np.ndarray:
    low = [str(x).lower() for x in col.labels]
    bad = [x not in _TRUE and x not in _FALSE for x in low]
    _fail_first(
        np.asarray(bad, bool)[col.codes],
        col.name,
        lambda v: f"{v!r} is not a boolean (use 1/0, true/false)",
        source,
        col,
    )
    return np.asarray([x in _TRUE for x in low], bool)[col.codes]


def _first_in_group(keys: np.ndarray, n_groups: int) -> np.ndarray:
    """Index of the first row of each group (keys are 0..n_groups-1)."""
    first = np.full(n_groups, len(keys), dtype=np.int64)
    np.minimum.at(first, keys, np.arange(len(keys)))
    return first


def _check_constant(keys, n_groups, codes, column, what, source, col):
    """Error at the first row whose value differs from its group's first row."""
    first = _first_in_group(keys, n_groups)
    differ = codes != codes[first[keys]]
    _fail_first(
        differ,
        column,
        lambda v: f"{what}: {v!r} differs from the value in the group's first row",
        source,
        col,
    )


def load_responses(
    df_or_path,
    *,
    known_conditions: list[str] | tuple[str, ...] | None = None,
    classes: list[str] | tuple[str, ...] | None = None,
) -> Responses:
    """Read, validate and encode a response table.

    ``known_conditions`` (the study's declared conditions) makes any other label
    an error; ``classes`` fixes the forced-choice answer set (otherwise: the
    image classes seen in that experiment).
    """
    source = "" if isinstance(df_or_path, pd.DataFrame) else str(df_or_path)
    frame = _read_frame(df_or_path, source)
    n = len(frame)
    if n == 0:
        raise AnalysisInputError("no data rows", source=source)
    cols = {c: _Col(c, frame[c]) for c in frame.columns if c not in _UNUSED}
    del frame

    for name in ("experiment", "task_id", "rater_id", "image_id", "condition_a"):
        c = cols[name]
        _fail_first(c.mask_of(lambda v: v == ""), name, "empty value", source, c)

    kind = cols["experiment_kind"]
    _fail_first(
        kind.mask_of(lambda v: v not in (PAIRWISE, FORCED_CHOICE)),
        "experiment_kind",
        lambda v: f"unknown experiment_kind {v!r} (expected pairwise or forced_choice)",
        source,
        kind,
    )
    exp = cols["experiment"]
    n_exp = len(exp.labels)
    _check_constant(
        exp.codes,
        n_exp,
        kind.codes,
        "experiment_kind",
        "experiment_kind changes within an experiment",
        source,
        kind,
    )
    src = cols["rater_source"]
    _fail_first(
        src.mask_of(lambda v: v not in RATER_SOURCES),
        "rater_source",
        lambda v: f"unknown rater_source {v!r} (expected link, prolific or mturk)",
        source,
        src,
    )
    pairwise = kind.mask_of(lambda v: v == PAIRWISE)
    fc = ~pairwise

    is_catch = _truthy(cols["is_catch"], source) if "is_catch" in cols else np.zeros(n, bool)
    excluded_flag = _truthy(cols["excluded"], source) if "excluded" in cols else np.zeros(n, bool)
    late = _truthy(cols["late"], source) if "late" in cols else np.zeros(n, bool)
    over_quota = _truthy(cols["over_quota"], source) if "over_quota" in cols else np.zeros(n, bool)
    reopened = _truthy(cols["reopened"], source) if "reopened" in cols else np.zeros(n, bool)
    catch_expected = np.full(n, np.nan)
    if "catch_expected" in cols:
        ce = cols["catch_expected"]
        num = pd.to_numeric(pd.Series(ce.labels), errors="coerce").to_numpy()
        bad = np.isnan(num) & np.asarray([x != "" for x in ce.labels])
        _fail_first(bad[ce.codes], "catch_expected", "not a number", source, ce)
        catch_expected = num[ce.codes]
    # Which rows are checks and probes: decided before any real-task rule.
    kinds = _checks.row_kinds(cols, is_catch, n, source)
    check = kinds.check  # attention or catch (incl. is_catch)
    table = kinds.table  # real tasks: the only rows of the tables
    answer_row = ~kinds.probe & ~kinds.attention  # one per rater and task

    # Scale: 3, 5 or 7 on pairwise rows, one scale per experiment.
    sp = cols["scale_points"]
    _fail_first(
        pairwise & sp.mask_of(lambda v: v not in ("3", "5", "7")),
        "scale_points",
        lambda v: f"scale_points {v!r} is not 3, 5 or 7 (required for pairwise)",
        source,
        sp,
    )
    _check_constant(
        exp.codes, n_exp, sp.codes, "scale_points", "mixed scales in one experiment", source, sp
    )
    scale_num = np.asarray([int(x) if x in ("3", "5", "7") else 0 for x in sp.labels])[sp.codes]

    shown = cols["shown_left"]
    _fail_first(
        pairwise & shown.mask_of(lambda v: v not in ("a", "b")),
        "shown_left",
        lambda v: f"shown_left {v!r} is not 'a' or 'b' (required for pairwise)",
        source,
        shown,
    )
    shown_left_a = shown.mask_of(lambda v: v == "a")

    # Conditions.
    ca, cb = cols["condition_a"], cols["condition_b"]
    for c, rows in ((ca, np.ones(n, bool)), (cb, pairwise)):
        # Label syntax on every row; the study's conditions on every row but checks
        # (a pairwise catch pairs a condition with itself).
        _fail_first(
            rows & c.mask_of(lambda v: not LABEL.match(v)),
            c.name,
            lambda v: f"condition label {v!r} is empty or malformed",
            source,
            c,
        )
        if known_conditions is not None:
            known = set(known_conditions)
            _fail_first(
                rows & ~check & c.mask_of(lambda v, known=known: v not in known),
                c.name,
                lambda v, known=known: f"unknown condition {v!r} (study has {sorted(known)})",
                source,
                c,
            )
    a_vals = ca.values()
    b_vals = cb.values()
    same = pairwise & ~check & (a_vals == b_vals)
    _fail_first(same, "condition_b", "condition_b equals condition_a", source)
    order = {lab: i for i, lab in enumerate(sort_conditions([*ca.labels, *cb.labels]))}
    rank_a = np.asarray([order[x] for x in ca.labels])[ca.codes]
    rank_b = np.asarray([order.get(x, -1) for x in cb.labels])[cb.codes]
    _fail_first(
        pairwise & ~check & (rank_a > rank_b),
        "condition_a",
        "condition_a must be the lower CPR of the pair (answers are from its point of view)",
        source,
    )

    # Tasks: unique per (experiment, task_id); one pair and one image per task.
    tid = cols["task_id"]
    task_key = exp.codes.astype(np.int64) * len(tid.labels) + tid.codes
    _, task = np.unique(task_key, return_inverse=True)
    n_tasks = int(task.max()) + 1
    for name in ("condition_a", "condition_b", "image_id"):
        c = cols[name]
        _check_constant(task, n_tasks, c.codes, name, "a task must show one stimulus", source, c)
    rater = cols["rater_id"]
    # One answer per rater and task, among the answers (real tasks and catch trials):
    # an attention check or a probe repeats a task the rater answered.
    key = task.astype(np.int64) * len(rater.labels) + rater.codes
    answer_idx = np.flatnonzero(answer_row)
    order_idx = answer_idx[np.argsort(key[answer_idx], kind="stable")]
    dup = np.zeros(n, bool)
    dup[order_idx[1:]] = key[order_idx[1:]] == key[order_idx[:-1]]
    _fail_first(dup, "rater_id", "the same rater answered this task twice", source)
    original = _checks.probe_originals(kinds, key, answer_row, cols, source)

    # response_ms: a non-negative number, or empty (the rater API does not require it;
    # such answers count everywhere but in the speed figures).
    rms = cols["response_ms"]
    ms_num = pd.to_numeric(pd.Series(rms.labels), errors="coerce").to_numpy(dtype=float)
    ms_empty = np.asarray([str(v).strip() == "" for v in rms.labels], dtype=bool)
    _fail_first(
        ((np.isnan(ms_num) & ~ms_empty) | (ms_num < 0))[rms.codes],
        "response_ms",
        lambda v: f"response_ms {v!r} is not a non-negative number",
        source,
        rms,
    )
    response_ms = ms_num[rms.codes]

    # Answers.
    ans = cols["answer"]
    is_int = np.asarray([bool(_INT.match(x)) for x in ans.labels])
    _fail_first(
        pairwise & ~is_int[ans.codes],
        "answer",
        lambda v: f"pairwise answer {v!r} is not an integer",
        source,
        ans,
    )
    ans_num = np.asarray([int(x) if _INT.match(x) else 0 for x in ans.labels], dtype=np.int64)
    value = np.where(pairwise, ans_num[ans.codes], 0)
    k = (scale_num - 1) // 2
    out_of_range = pairwise & (np.abs(value) > k)
    bad = np.flatnonzero(out_of_range)
    if len(bad):
        i = int(bad[0])
        raise AnalysisInputError(
            f"answer {value[i]} is out of range -{k[i]}..+{k[i]} for a {scale_num[i]}-point scale",
            row=i + 1,
            column="answer",
            source=source,
        )

    img_cls = cols["image_class"]
    _fail_first(
        fc & img_cls.mask_of(lambda v: v == ""),
        "image_class",
        "empty image_class (needed to score a forced-choice answer)",
        source,
        img_cls,
    )
    if classes is not None:
        allowed = set(classes)
        _fail_first(
            fc & img_cls.mask_of(lambda v: v not in allowed),
            "image_class",
            lambda v: f"image_class {v!r} is not one of the study's classes",
            source,
            img_cls,
        )

    experiments: dict[str, ExperimentInfo] = {}
    for e, name in enumerate(exp.labels):
        in_exp = exp.codes == e
        if not in_exp.any():
            continue
        # The experiment's conditions and classes come from its real tasks only (a
        # catch image's class or a check's instructed answer must not add any).
        rows = in_exp & table if (in_exp & table).any() else in_exp
        first = int(np.flatnonzero(in_exp)[0])
        e_kind = kind.labels[kind.codes[first]]
        conds = set(ca.labels[np.unique(ca.codes[rows])])
        if e_kind == PAIRWISE:
            conds |= set(cb.labels[np.unique(cb.codes[rows])])
            experiments[name] = ExperimentInfo(
                name, PAIRWISE, int(scale_num[first]), tuple(sort_conditions(conds))
            )
        else:
            cls = (
                set(classes)
                if classes is not None
                else set(img_cls.labels[np.unique(img_cls.codes[rows])])
            )
            allowed_answers = cls | {IDK}
            # A check may instruct, or show, a class no real task of the experiment shows.
            check_answers = allowed_answers | (
                _checks.check_answers(kinds, in_exp, img_cls, cols) if classes is None else set()
            )
            _fail_first(
                in_exp
                & np.where(
                    check,
                    ans.mask_of(lambda v, a=check_answers: v not in a),
                    ans.mask_of(lambda v, a=allowed_answers: v not in a),
                ),
                "answer",
                lambda v, c=cls: (
                    f"forced-choice answer {v!r} is neither a class ({sorted(c)}) nor 'idk'"
                ),
                source,
                ans,
            )
            experiments[name] = ExperimentInfo(
                name, FORCED_CHOICE, None, tuple(sort_conditions(conds)), tuple(sorted(cls))
            )

    _checks.validate_expected(
        kinds, cols, pairwise=pairwise, k=(scale_num - 1) // 2, classes=classes, source=source
    )
    columns = {
        "row": np.arange(1, n + 1, dtype=np.int64),
        "experiment": exp.categorical(),
        "task": task.astype(np.int64),
        "task_id": tid.categorical(),
        "rater": rater.categorical(),
        "rater_source": src.categorical(),
        "condition_a": ca.categorical(),
        "condition_b": cb.categorical(),
        "shown_left_a": shown_left_a,
        "value": value.astype(np.int8),
        "answer": ans.categorical(),
        "answer_raw": cols["answer_raw"].categorical(),
        "response_ms": response_ms,
        "image_id": cols["image_id"].categorical(),
        "image_class": img_cls.categorical(),
        "excluded_flag": excluded_flag,
        "late": late,
        "over_quota": over_quota,
        "reopened": reopened,
    }
    df = pd.DataFrame({name: values[table] for name, values in columns.items()})
    checks = _checks.check_frame(
        kinds,
        columns,
        pairwise=pairwise,
        catch_expected=catch_expected,
        original=original,
    )
    return Responses(
        df=df.reset_index(drop=True), experiments=experiments, source=source, checks=checks
    )
