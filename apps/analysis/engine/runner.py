"""run_analysis: validated responses in, every table and figure out.

The run is a sequence of named steps (:data:`STEPS`), each a function here or
in :mod:`.tables`: ``load`` (validate the input, read the side tables),
``quality`` (score raters, choose the answers analysed), ``experiments``
(per-experiment tables), ``tables`` (one table per output file), ``write``
(CSV files), ``figures`` and ``readme``. The ``analyze`` command and the
results page's background task both go through :func:`run_analysis`; its
``on_step`` callback reports each step as it starts (the progress a UI shows).
"""

from __future__ import annotations

import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from . import correlations, figures, quality
from .bootstrap import Bootstrapper
from .conditions import safe_name
from .loading import PAIRWISE, Responses, load_responses
from .readme import readme_text
from .tables import ExperimentParts, assemble_tables, experiment_parts

STEPS = ("load", "quality", "experiments", "tables", "write", "figures", "readme")


@dataclass(frozen=True)
class AnalysisOptions:
    """Knobs of one analysis run (all keyword, all with working defaults).

    n_boot: bootstrap replicates (0 turns CIs off); seed: RNG seed;
    ci_level: two-sided CI level; bootstrap_units: tasks | raters | both;
    include_excluded: keep raters that the quality rules exclude;
    include_over_quota: keep late answers that were stored outside their
    task's quota (left out by default: the task already had its answers).
    Answers marked ``reopened`` (their slot went to another rater) and check
    items (attention checks, catch trials, consistency probes) never enter the
    tables; they count for rater quality only;
    target_ci_width: full CI width the power estimate aims for;
    figures: draw PNG+SVG figures; metrics / model_accuracy: optional side
    tables (path or DataFrame); known_conditions / classes: see load_responses.
    """

    n_boot: int = 1000
    seed: int = 0
    ci_level: float = 0.95
    bootstrap_units: str = "both"
    include_excluded: bool = False
    include_over_quota: bool = False
    rules: quality.QualityRules = field(default_factory=quality.QualityRules)
    target_ci_width: float = 0.05
    figures: bool = True
    metrics: object = None
    model_accuracy: object = None
    known_conditions: tuple[str, ...] | None = None
    classes: tuple[str, ...] | None = None
    alpha_tests: float = 0.05


@dataclass
class AnalysisResult:
    out_dir: Path
    files: list[Path]
    tables: dict[str, pd.DataFrame]
    excluded_raters: list[str]
    n_answers_in: int
    n_answers_used: int
    seconds: float

    def summary_lines(self) -> list[str]:
        return [
            f"{self.n_answers_in} answers read, {self.n_answers_used} analysed",
            f"{len(self.excluded_raters)} raters excluded",
            f"{len(self.files)} files written to {self.out_dir}",
            f"{self.seconds:.2f} s",
        ]


@dataclass(frozen=True)
class Inputs:
    """Step ``load``: the validated responses and the optional side tables."""

    responses: Responses
    metrics: pd.DataFrame | None
    model_acc: pd.DataFrame | None


@dataclass(frozen=True)
class Selection:
    """Step ``quality``: the rater table, who is excluded, and the answers analysed.

    ``keep`` is a mask over ``responses.df`` (real tasks only); ``used`` its rows.
    """

    rater_quality: pd.DataFrame
    excluded: pd.DataFrame  # rater_id, rater_source, n_answers, reasons
    keep: np.ndarray
    used: pd.DataFrame


def load_inputs(df_or_path, opts: AnalysisOptions) -> Inputs:
    """Validate the responses (AnalysisInputError names row and column) and read the side tables."""
    responses = (
        df_or_path
        if isinstance(df_or_path, Responses)
        else load_responses(
            df_or_path, known_conditions=opts.known_conditions, classes=opts.classes
        )
    )
    metrics = (
        correlations.read_table(opts.metrics, ("condition", "image_id"), "metrics")
        if opts.metrics is not None
        else None
    )
    model_acc = (
        correlations.read_table(
            opts.model_accuracy, ("condition", "test_accuracy"), "model accuracy"
        )
        if opts.model_accuracy is not None
        else None
    )
    return Inputs(responses=responses, metrics=metrics, model_acc=model_acc)


def select_answers(responses: Responses, opts: AnalysisOptions) -> Selection:
    """Score the raters; leave out reopened, over-quota (unless kept) and excluded raters' answers."""
    df = responses.df  # real tasks only: checks and probes are in responses.checks
    rq = quality.rater_quality(responses, opts.rules)
    excluded = rq.loc[rq["excluded"], ["rater_id", "rater_source", "n_answers", "reasons"]]
    keep = ~df["reopened"].to_numpy()
    if not opts.include_over_quota:
        keep &= ~df["over_quota"].to_numpy()
    if not opts.include_excluded and len(excluded):
        keep &= ~df["rater"].astype(str).isin(set(excluded["rater_id"])).to_numpy()
    return Selection(rater_quality=rq, excluded=excluded, keep=keep, used=df[keep])


def write_tables(
    tables: dict[str, pd.DataFrame], confusion: dict[str, dict[str, pd.DataFrame]], out: Path
) -> list[Path]:
    """One CSV per table, then one per forced-choice confusion matrix."""
    files: list[Path] = []
    for stem, table in tables.items():
        p = out / f"{stem}.csv"
        table.to_csv(p, index=False)
        files.append(p)
    for exp, mats in confusion.items():
        for cond, m in mats.items():
            p = out / f"confusion_{safe_name(exp)}_{safe_name(cond)}.csv"
            m.to_csv(p, index=False)
            files.append(p)
    return files


def draw_figures(
    responses: Responses,
    tables: dict[str, pd.DataFrame],
    confusion: dict[str, dict[str, pd.DataFrame]],
    model_acc: pd.DataFrame | None,
    out: Path,
) -> list[Path]:
    """Figure 2 of the paper, then per experiment its distribution/index or confusion figures."""
    files = figures.figure2(
        tables["explainability_index"], tables["forced_choice_summary"], model_acc, out
    )
    for name, info in responses.experiments.items():
        if info.kind == PAIRWISE:
            files += figures.answer_distribution(tables["answer_distribution"], name, out)
            files += figures.index_with_ci(tables["explainability_index"], name, out)
        elif name in confusion:
            files += figures.confusions(confusion[name], name, out)
    return files


def write_readme(
    responses: Responses, opts: AnalysisOptions, result: AnalysisResult, rq: pd.DataFrame
) -> Path:
    readme = result.out_dir / "README.md"
    readme.write_text(readme_text(responses, opts, result, rq), encoding="utf-8")
    return readme


def run_analysis(
    df_or_path,
    out_dir,
    *,
    options: AnalysisOptions | None = None,
    on_step: Callable[[str], None] | None = None,
) -> AnalysisResult:
    """Analyse a response table (DataFrame or CSV path) and write every output to ``out_dir``.

    Raises AnalysisInputError (naming row and column) on invalid input, before
    anything is written. ``on_step(name)`` is called as each of :data:`STEPS` starts.
    """
    opts = options or AnalysisOptions()
    step = on_step or (lambda name: None)
    t0 = time.perf_counter()
    step("load")
    inputs = load_inputs(df_or_path, opts)
    responses = inputs.responses
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_in = len(responses.df) + len(responses.checks)

    step("quality")
    selection = select_answers(responses, opts)

    step("experiments")
    boot = Bootstrapper(
        n_boot=opts.n_boot, seed=opts.seed, level=opts.ci_level, units=opts.bootstrap_units
    )
    parts: ExperimentParts = experiment_parts(
        responses,
        selection.used,
        boot,
        metrics=inputs.metrics,
        model_acc=inputs.model_acc,
        target_ci_width=opts.target_ci_width,
    )

    step("tables")
    tables = assemble_tables(
        parts, selection.rater_quality, selection.excluded, alpha_tests=opts.alpha_tests
    )

    step("write")
    files = write_tables(tables, parts.confusion, out)

    step("figures")
    if opts.figures:
        files += draw_figures(responses, tables, parts.confusion, inputs.model_acc, out)

    step("readme")
    result = AnalysisResult(
        out_dir=out,
        files=files,
        tables=tables,
        excluded_raters=list(selection.excluded["rater_id"]),
        n_answers_in=n_in,
        n_answers_used=int(selection.keep.sum()),
        seconds=time.perf_counter() - t0,
    )
    files.append(write_readme(responses, opts, result, selection.rater_quality))
    return result


def write_zip(out_dir, out: BinaryIO) -> None:
    """All files of an analysis directory as one ZIP archive, written into ``out``.

    ``out`` is a binary file (on disk for large results: members are copied in
    pieces, the archive never sits in memory whole).
    """
    root = Path(out_dir)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                z.write(p, p.relative_to(root).as_posix())
