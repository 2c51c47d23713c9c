"""run_analysis: validated responses in, every table and figure out."""

from __future__ import annotations

import io
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import bradley_terry, correlations, figures, forced_choice, pairwise, quality
from .bootstrap import Bootstrapper, percentile_ci
from .conditions import safe_name
from .loading import FORCED_CHOICE, PAIRWISE, Responses, load_responses
from .testing import holm


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


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    frames = [f for f in frames if f is not None and not f.empty]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)


def _bt_table(d: pairwise.PairwiseData, boot: Bootstrapper) -> pd.DataFrame:
    """Davidson Bradley-Terry scores (log-strength, mean 0) with task-bootstrap CIs."""
    conds = list(d.info.conditions)
    idx = {c: i for i, c in enumerate(conds)}
    pairs = [(idx[a], idx[b]) for a, b in d.pairs]
    k = d.k
    # per task: wins for a, wins for b, ties
    t_wins_a = d.t_counts[:, k + 1 :].sum(axis=1)
    t_wins_b = d.t_counts[:, :k].sum(axis=1)
    t_ties = d.t_counts[:, k]
    counts = np.stack(
        [
            np.array(
                [
                    t_wins_a[d.t_pair == p].sum(),
                    t_wins_b[d.t_pair == p].sum(),
                    t_ties[d.t_pair == p].sum(),
                ]
            )
            for p in range(len(pairs))
        ]
    )
    est = bradley_terry.fit(pairs, counts, len(conds))[0]
    low = high = np.full(len(conds) + 1, np.nan)
    if boot.n_boot > 0:
        reps = np.zeros((boot.n_boot, len(pairs), 3))
        for p in range(len(pairs)):
            m = d.t_pair == p
            trip = np.stack([t_wins_a[m], t_wins_b[m], t_ties[m]], axis=1)
            types, cnt = np.unique(trip, axis=0, return_counts=True)
            draws = boot.rng.multinomial(int(m.sum()), cnt / cnt.sum(), size=boot.n_boot)
            reps[:, p, :] = draws @ types
        fits = bradley_terry.fit(pairs, reps, len(conds))
        low, high = percentile_ci(fits, boot.level)
    rows = [
        {
            "experiment": d.info.name,
            "condition": c,
            "score": est[i],
            "ci_low": low[i],
            "ci_high": high[i],
        }
        for i, c in enumerate(conds)
    ]
    rows.append(
        {
            "experiment": d.info.name,
            "condition": "(tie parameter log nu)",
            "score": est[-1],
            "ci_low": low[-1],
            "ci_high": high[-1],
        }
    )
    return pd.DataFrame(rows)


def _power_rows(
    table: pd.DataFrame,
    statistic: str,
    key_cols: list[str],
    value: str,
    lo: str,
    hi: str,
    target: float,
):
    """Answers needed for a CI of full width ``target``: width scales as 1/sqrt(n)."""
    rows = []
    for _, r in table.iterrows():
        width = float(r[hi] - r[lo])
        n = int(r["n_answers"])
        needed = (
            int(np.ceil(n * (width / target) ** 2)) if np.isfinite(width) and width > 0 else None
        )
        rows.append(
            {
                "experiment": r["experiment"],
                "statistic": statistic,
                "key": "~".join(str(r[c]) for c in key_cols),
                "estimate": float(r[value]),
                "n_answers": n,
                "ci_width": width,
                "target_ci_width": target,
                "answers_needed": needed,
            }
        )
    return rows


def run_analysis(df_or_path, out_dir, *, options: AnalysisOptions | None = None) -> AnalysisResult:
    """Analyse a response table (DataFrame or CSV path) and write every output to ``out_dir``.

    Raises AnalysisInputError (naming row and column) on invalid input, before
    anything is written.
    """
    opts = options or AnalysisOptions()
    t0 = time.perf_counter()
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
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    df = responses.df  # real tasks only: checks and probes are in responses.checks
    n_in = len(df) + len(responses.checks)

    rq = quality.rater_quality(responses, opts.rules)
    excluded = rq.loc[rq["excluded"], ["rater_id", "rater_source", "n_answers", "reasons"]]
    keep = ~df["reopened"].to_numpy()
    if not opts.include_over_quota:
        keep &= ~df["over_quota"].to_numpy()
    if not opts.include_excluded and len(excluded):
        keep &= ~df["rater"].astype(str).isin(set(excluded["rater_id"])).to_numpy()
    used = df[keep]

    boot = Bootstrapper(
        n_boot=opts.n_boot, seed=opts.seed, level=opts.ci_level, units=opts.bootstrap_units
    )
    t: dict[str, list[pd.DataFrame]] = {
        k: []
        for k in (
            "means",
            "index",
            "pw_agree",
            "shares",
            "dist",
            "fc_sum",
            "fc_class",
            "fc_agree",
            "bt",
            "sig",
            "bias",
            "corr",
            "power",
        )
    }
    confusion_files: dict[str, dict[str, pd.DataFrame]] = {}
    exp_codes = used["experiment"].cat.codes.to_numpy()
    exp_labels = list(used["experiment"].cat.categories)
    for name, info in responses.experiments.items():
        sub = used[exp_codes == exp_labels.index(name)] if name in exp_labels else used.iloc[:0]
        if sub.empty:
            continue
        if info.kind == PAIRWISE:
            d = pairwise.build(sub, info)
            m = pairwise.means(d, boot)
            ix = pairwise.explainability_index(d, boot)
            t["means"].append(m)
            t["index"].append(ix)
            t["pw_agree"].append(pairwise.agreement_table(d))
            t["shares"].append(pairwise.shares(d))
            t["dist"].append(pairwise.distribution(d))
            t["bt"].append(_bt_table(d, boot))
            sig = pairwise.significance(d)
            t["sig"].append(sig)
            t["bias"].append(pd.DataFrame([pairwise.position_bias(d)]))
            t["corr"].append(
                pd.DataFrame(
                    correlations.correlate(
                        name,
                        "explainability_index",
                        ix.rename(columns={"index": "human"}),
                        pairwise.per_image_index(d),
                        metrics,
                        model_acc,
                    )
                )
            )
            t["power"].append(
                pd.DataFrame(
                    _power_rows(
                        m,
                        "pair_mean",
                        ["condition_a", "condition_b"],
                        "mean",
                        "ci_low",
                        "ci_high",
                        opts.target_ci_width,
                    )
                    + _power_rows(
                        ix,
                        "explainability_index",
                        ["condition"],
                        "index",
                        "ci_low",
                        "ci_high",
                        opts.target_ci_width,
                    )
                )
            )
        elif info.kind == FORCED_CHOICE:
            d = forced_choice.build(sub, info)
            s = forced_choice.summary(d, boot)
            t["fc_sum"].append(s)
            t["fc_class"].append(forced_choice.per_class(d))
            t["fc_agree"].append(forced_choice.agreement_table(d))
            confusion_files[name] = {
                c: forced_choice.confusion(d, i) for i, c in enumerate(info.conditions)
            }
            per_img = forced_choice.per_image_accuracy(d)
            t["sig"].append(forced_choice.significance(d, per_img))
            t["corr"].append(
                pd.DataFrame(
                    correlations.correlate(
                        name,
                        "accuracy",
                        s.rename(columns={"accuracy": "human"}),
                        per_img,
                        metrics,
                        model_acc,
                    )
                )
            )
            t["power"].append(
                pd.DataFrame(
                    _power_rows(
                        s,
                        "accuracy",
                        ["condition"],
                        "accuracy",
                        "accuracy_ci_low",
                        "accuracy_ci_high",
                        opts.target_ci_width,
                    )
                )
            )

    sig = _concat(
        t["sig"],
        [
            "experiment",
            "condition_a",
            "condition_b",
            "test",
            "n_units",
            "estimate",
            "statistic",
            "p_value",
        ],
    )
    if not sig.empty:
        sig["p_holm"] = np.nan
        for (_, _), g in sig.groupby(["experiment", "test"], sort=False):
            sig.loc[g.index, "p_holm"] = holm(g["p_value"].to_numpy())
        sig["reject_holm"] = sig["p_holm"] < opts.alpha_tests
    else:
        sig["p_holm"] = []
        sig["reject_holm"] = []

    tables: dict[str, pd.DataFrame] = {
        "pairwise_means": _concat(
            t["means"],
            [
                "experiment",
                "condition_a",
                "condition_b",
                "n_answers",
                "mean",
                "sd",
                "n_tasks",
                "ci_low",
                "ci_high",
            ],
        ),
        "explainability_index": _concat(
            t["index"],
            ["experiment", "condition", "n_answers", "index", "ci_low", "ci_high", "n_tasks"],
        ),
        "pairwise_agreement": _concat(
            t["pw_agree"],
            [
                "experiment",
                "scope",
                "key",
                "n_tasks",
                "alpha_interval",
                "alpha_ordinal",
                "mean_task_sd",
            ],
        ),
        "pairwise_shares": _concat(
            t["shares"],
            [
                "experiment",
                "condition_a",
                "condition_b",
                "share_a_more",
                "share_b_more",
                "share_equal",
                "n_answers",
            ],
        ),
        "answer_distribution": _concat(
            t["dist"], ["experiment", "condition_a", "condition_b", "answer", "count"]
        ),
        "forced_choice_summary": _concat(
            t["fc_sum"],
            [
                "experiment",
                "condition",
                "n_answers",
                "accuracy",
                "error_rate",
                "indecisive_rate",
                "accuracy_ci_low",
                "accuracy_ci_high",
                "n_tasks",
            ],
        ),
        "forced_choice_per_class": _concat(
            t["fc_class"],
            [
                "experiment",
                "condition",
                "class",
                "n_answers",
                "accuracy",
                "error_rate",
                "indecisive_rate",
            ],
        ),
        "forced_choice_agreement": _concat(
            t["fc_agree"], ["experiment", "scope", "key", "n_tasks", "alpha_nominal"]
        ),
        "bradley_terry": _concat(
            t["bt"], ["experiment", "condition", "score", "ci_low", "ci_high"]
        ),
        "significance_tests": sig,
        "position_bias": _concat(
            t["bias"],
            [
                "experiment",
                "n_answers",
                "mean_left_view",
                "n_left_more",
                "n_right_more",
                "share_left_more",
                "binom_p",
                "t_p_task_means",
                "share_a_shown_left",
                "randomisation_binom_p",
            ],
        ),
        "rater_quality": rq,
        "excluded_raters": excluded.reset_index(drop=True),
        "correlations": _concat(
            t["corr"],
            [
                "experiment",
                "level",
                "human_measure",
                "metric",
                "n",
                "pearson_r",
                "pearson_p",
                "spearman_rho",
                "spearman_p",
            ],
        ),
        "power": _concat(
            t["power"],
            [
                "experiment",
                "statistic",
                "key",
                "estimate",
                "n_answers",
                "ci_width",
                "target_ci_width",
                "answers_needed",
            ],
        ),
    }
    files: list[Path] = []
    for stem, table in tables.items():
        p = out / f"{stem}.csv"
        table.to_csv(p, index=False)
        files.append(p)
    for exp, mats in confusion_files.items():
        for cond, m in mats.items():
            p = out / f"confusion_{safe_name(exp)}_{safe_name(cond)}.csv"
            m.to_csv(p, index=False)
            files.append(p)
    if opts.figures:
        files += figures.figure2(
            tables["explainability_index"], tables["forced_choice_summary"], model_acc, out
        )
        for name, info in responses.experiments.items():
            if info.kind == PAIRWISE:
                files += figures.answer_distribution(tables["answer_distribution"], name, out)
                files += figures.index_with_ci(tables["explainability_index"], name, out)
            elif name in confusion_files:
                files += figures.confusions(confusion_files[name], name, out)
    seconds = time.perf_counter() - t0
    result = AnalysisResult(
        out_dir=out,
        files=files,
        tables=tables,
        excluded_raters=list(excluded["rater_id"]),
        n_answers_in=n_in,
        n_answers_used=int(keep.sum()),
        seconds=seconds,
    )
    readme = out / "README.md"
    readme.write_text(_readme(responses, opts, result, rq), encoding="utf-8")
    files.append(readme)
    return result


def _readme(
    responses: Responses, opts: AnalysisOptions, result: AnalysisResult, rq: pd.DataFrame
) -> str:
    kinds = responses.checks["kind"].astype(str).value_counts()
    n_checks = len(responses.checks)
    n_over = int(responses.df["over_quota"].sum())
    n_reopened = int(responses.df["reopened"].sum())
    excl = result.excluded_raters
    state = "INCLUDED (--include-excluded)" if opts.include_excluded else "left out"
    lines = [
        "# Analysis results",
        "",
        f"Input: {responses.source or 'DataFrame'}; {result.n_answers_in} answers, "
        f"{len(rq)} raters, {len(responses.experiments)} experiment(s): "
        + ", ".join(
            f"{n} ({i.kind}{', ' + str(i.scale_points) + '-point' if i.scale_points else ''})"
            for n, i in responses.experiments.items()
        ),
        f"Analysed answers: {result.n_answers_used} ({n_checks} check items: "
        f"{int(kinds.get('attention', 0))} attention checks, {int(kinds.get('catch', 0))} catch "
        f"trials, {int(kinds.get('probe', 0))} consistency probes, are used for rater quality only).",
        f"Reopened answers (rater excluded while the study ran, slot given to another rater): "
        f"{n_reopened}, left out.",
        f"Late answers: {int(responses.df['late'].sum())}, of which {n_over} over their task's quota, "
        + ("INCLUDED (--include-over-quota)." if opts.include_over_quota else "left out."),
        f"Excluded raters: {len(excl)} by the quality rules, {state}; see excluded_raters.csv"
        + (
            f" ({', '.join(map(str, excl[:20]))}{' ...' if len(excl) > 20 else ''})."
            if excl
            else "."
        ),
        "",
        "## Quality rules",
        *[f"- {line}" for line in opts.rules.describe()],
        "",
        "## Definitions",
        "- Pairwise answers are encoded from condition_a's (the lower CPR's) point of view, -k..+k.",
        "- pairwise_means: mean encoded answer per pair (paper Table 4); sd = s.d. of the answers (ddof 1).",
        "- explainability_index: per condition, mean of all answers in tasks containing it, from its view (Table 5).",
        "- mean_task_sd: population s.d. (ddof 0) per task, averaged over tasks with >= 2 answers (Tables 1, 3).",
        "- Krippendorff's alpha from units(tasks)-by-values counts; interval and ordinal for pairwise, nominal for forced choice.",
        "- Forced choice: accuracy = correct/all, error_rate = wrong class/all, indecisive_rate = idk/all.",
        f"- CIs: {opts.ci_level:.0%} percentile bootstrap, {opts.n_boot} replicates, seed {opts.seed}, units: {opts.bootstrap_units} "
        "(tasks: exact multinomial over task aggregates; raters: resampled with replacement; both: sum of the one-way deviations, Owen 2007).",
        "- bradley_terry: Davidson model with ties, log-strength centred to mean 0; CIs by task bootstrap.",
        "- significance_tests: pairwise pairs vs 0 on task means; forced-choice conditions paired by image; "
        f"Holm within experiment and test; reject at {opts.alpha_tests}.",
        "- position_bias: answers from the left map's view; binomial test on non-equal answers.",
        f"- power: answers needed for a CI of full width {opts.target_ci_width} (width scales as 1/sqrt(n)).",
        "",
        "## Files",
        *[f"- {p.name}" for p in result.files],
        "- README.md",
        "",
    ]
    return "\n".join(lines)


def write_zip(out_dir) -> bytes:
    """All files of an analysis directory as one ZIP archive (for download)."""
    buf = io.BytesIO()
    root = Path(out_dir)
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                z.write(p, p.relative_to(root).as_posix())
    return buf.getvalue()
