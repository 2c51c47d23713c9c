"""The analysis's tables: per-experiment parts, then one table per output file.

Steps of :func:`apps.analysis.engine.runner.run_analysis` (see there for the
order). Each experiment contributes parts (one small DataFrame per output
table); :func:`assemble_tables` concatenates the parts in experiment order
with the fixed column sets below, so an experiment kind without answers
still yields its tables, empty, with their columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import bradley_terry, correlations, forced_choice, pairwise
from .bootstrap import Bootstrapper, percentile_ci
from .loading import FORCED_CHOICE, PAIRWISE, Responses
from .testing import holm

PART_KEYS = (
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

SIGNIFICANCE_COLUMNS = [
    "experiment",
    "condition_a",
    "condition_b",
    "test",
    "n_units",
    "estimate",
    "statistic",
    "p_value",
]

# output table stem -> (part key, columns when no experiment contributed)
TABLE_PARTS: dict[str, tuple[str, list[str]]] = {
    "pairwise_means": (
        "means",
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
    "explainability_index": (
        "index",
        ["experiment", "condition", "n_answers", "index", "ci_low", "ci_high", "n_tasks"],
    ),
    "pairwise_agreement": (
        "pw_agree",
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
    "pairwise_shares": (
        "shares",
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
    "answer_distribution": (
        "dist",
        ["experiment", "condition_a", "condition_b", "answer", "count"],
    ),
    "forced_choice_summary": (
        "fc_sum",
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
    "forced_choice_per_class": (
        "fc_class",
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
    "forced_choice_agreement": (
        "fc_agree",
        ["experiment", "scope", "key", "n_tasks", "alpha_nominal"],
    ),
    "bradley_terry": ("bt", ["experiment", "condition", "score", "ci_low", "ci_high"]),
    "position_bias": (
        "bias",
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
    "correlations": (
        "corr",
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
    "power": (
        "power",
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
# The order of the output files (and of ``AnalysisResult.tables``).
TABLE_ORDER = (
    "pairwise_means",
    "explainability_index",
    "pairwise_agreement",
    "pairwise_shares",
    "answer_distribution",
    "forced_choice_summary",
    "forced_choice_per_class",
    "forced_choice_agreement",
    "bradley_terry",
    "significance_tests",
    "position_bias",
    "rater_quality",
    "excluded_raters",
    "correlations",
    "power",
)


@dataclass
class ExperimentParts:
    """What the experiments contributed: part frames per key, confusion matrices per experiment."""

    parts: dict[str, list[pd.DataFrame]] = field(
        default_factory=lambda: {key: [] for key in PART_KEYS}
    )
    confusion: dict[str, dict[str, pd.DataFrame]] = field(default_factory=dict)


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    frames = [f for f in frames if f is not None and not f.empty]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)


def bt_table(d: pairwise.PairwiseData, boot: Bootstrapper) -> pd.DataFrame:
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


def power_rows(
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


def pairwise_parts(
    t: dict[str, list[pd.DataFrame]],
    name: str,
    sub: pd.DataFrame,
    info,
    boot: Bootstrapper,
    metrics,
    model_acc,
    target_ci_width: float,
) -> None:
    """Append one pairwise experiment's parts to ``t``."""
    d = pairwise.build(sub, info)
    m = pairwise.means(d, boot)
    ix = pairwise.explainability_index(d, boot)
    t["means"].append(m)
    t["index"].append(ix)
    t["pw_agree"].append(pairwise.agreement_table(d))
    t["shares"].append(pairwise.shares(d))
    t["dist"].append(pairwise.distribution(d))
    t["bt"].append(bt_table(d, boot))
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
            power_rows(
                m,
                "pair_mean",
                ["condition_a", "condition_b"],
                "mean",
                "ci_low",
                "ci_high",
                target_ci_width,
            )
            + power_rows(
                ix,
                "explainability_index",
                ["condition"],
                "index",
                "ci_low",
                "ci_high",
                target_ci_width,
            )
        )
    )


def forced_choice_parts(
    t: dict[str, list[pd.DataFrame]],
    name: str,
    sub: pd.DataFrame,
    info,
    boot: Bootstrapper,
    metrics,
    model_acc,
    target_ci_width: float,
) -> dict[str, pd.DataFrame]:
    """Append one forced-choice experiment's parts to ``t``; returns its confusion matrices."""
    d = forced_choice.build(sub, info)
    s = forced_choice.summary(d, boot)
    t["fc_sum"].append(s)
    t["fc_class"].append(forced_choice.per_class(d))
    t["fc_agree"].append(forced_choice.agreement_table(d))
    confusion = {c: forced_choice.confusion(d, i) for i, c in enumerate(info.conditions)}
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
            power_rows(
                s,
                "accuracy",
                ["condition"],
                "accuracy",
                "accuracy_ci_low",
                "accuracy_ci_high",
                target_ci_width,
            )
        )
    )
    return confusion


def experiment_parts(
    responses: Responses,
    used: pd.DataFrame,
    boot: Bootstrapper,
    *,
    metrics,
    model_acc,
    target_ci_width: float,
) -> ExperimentParts:
    """Step "per-experiment tables": each experiment's parts from its ``used`` answers."""
    out = ExperimentParts()
    exp_codes = used["experiment"].cat.codes.to_numpy()
    exp_labels = list(used["experiment"].cat.categories)
    for name, info in responses.experiments.items():
        sub = used[exp_codes == exp_labels.index(name)] if name in exp_labels else used.iloc[:0]
        if sub.empty:
            continue
        if info.kind == PAIRWISE:
            pairwise_parts(out.parts, name, sub, info, boot, metrics, model_acc, target_ci_width)
        elif info.kind == FORCED_CHOICE:
            out.confusion[name] = forced_choice_parts(
                out.parts, name, sub, info, boot, metrics, model_acc, target_ci_width
            )
    return out


def significance_table(parts: list[pd.DataFrame], alpha: float) -> pd.DataFrame:
    """All tests, with Holm-adjusted p within experiment and test."""
    sig = _concat(parts, SIGNIFICANCE_COLUMNS)
    if not sig.empty:
        sig["p_holm"] = np.nan
        for (_, _), g in sig.groupby(["experiment", "test"], sort=False):
            sig.loc[g.index, "p_holm"] = holm(g["p_value"].to_numpy())
        sig["reject_holm"] = sig["p_holm"] < alpha
    else:
        sig["p_holm"] = []
        sig["reject_holm"] = []
    return sig


def assemble_tables(
    parts: ExperimentParts, rq: pd.DataFrame, excluded: pd.DataFrame, *, alpha_tests: float
) -> dict[str, pd.DataFrame]:
    """Every output table by file stem, in :data:`TABLE_ORDER`."""
    t = parts.parts
    built: dict[str, pd.DataFrame] = {
        stem: _concat(t[key], columns) for stem, (key, columns) in TABLE_PARTS.items()
    }
    built["significance_tests"] = significance_table(t["sig"], alpha_tests)
    built["rater_quality"] = rq
    built["excluded_raters"] = excluded.reset_index(drop=True)
    return {stem: built[stem] for stem in TABLE_ORDER}
