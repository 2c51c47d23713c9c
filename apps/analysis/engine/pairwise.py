"""Pairwise-comparison experiments (pre-study, Experiment 1): Tables 1-5.

All answers are encoded from condition_a's point of view (the lower CPR,
"Algorithm 1"): +k means condition_a is clearly more reasonable. Everything is
computed from per-task aggregates (sum, sum of squares, count, value counts),
built once with ``bincount``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from . import agreement
from .bootstrap import Bootstrapper
from .loading import ExperimentInfo
from .testing import zero_difference_rows


@dataclass
class PairwiseData:
    """One pairwise experiment as integer arrays (row level and task level)."""

    info: ExperimentInfo
    pairs: list[tuple[str, str]]  # ordered by condition order
    value: np.ndarray  # (N,) int, condition_a's view
    task: np.ndarray  # (N,) local task index
    rater: np.ndarray  # (N,) local rater index
    raters: np.ndarray  # (R,) rater ids
    shown_left_a: np.ndarray  # (N,) bool
    image: np.ndarray  # (N,) image ids (object)
    t_pair: np.ndarray  # (T,) pair index of each task
    t_sum: np.ndarray  # (T,)
    t_sumsq: np.ndarray  # (T,)
    t_n: np.ndarray  # (T,)
    t_counts: np.ndarray  # (T, 2k+1) answers per value, column j = value j-k

    @property
    def k(self) -> int:
        return self.info.k

    @property
    def domain(self) -> np.ndarray:
        return np.arange(-self.k, self.k + 1)

    def condition_tasks(self, cond: str) -> tuple[np.ndarray, np.ndarray]:
        """Mask of tasks containing ``cond`` and the sign turning a task into its view."""
        sign_of_pair = np.array(
            [1 if a == cond else (-1 if b == cond else 0) for a, b in self.pairs], dtype=np.int64
        )
        sign = sign_of_pair[self.t_pair]
        return sign != 0, sign


def build(df: pd.DataFrame, info: ExperimentInfo) -> PairwiseData:
    a = df["condition_a"].to_numpy(dtype=object)
    b = df["condition_b"].to_numpy(dtype=object)
    order = {c: i for i, c in enumerate(info.conditions)}
    pair_keys = sorted(
        {(x, y) for x, y in zip(*_unique_pairs(a, b), strict=True)},
        key=lambda p: (order[p[0]], order[p[1]]),
    )
    pair_index = {p: i for i, p in enumerate(pair_keys)}
    _, task = np.unique(df["task"].to_numpy(), return_inverse=True)
    codes = df["rater"].cat.codes.to_numpy()
    used, rater = np.unique(codes, return_inverse=True)
    raters = np.asarray(df["rater"].cat.categories, dtype=object)[used]
    value = df["value"].to_numpy().astype(np.int64)
    n_tasks = int(task.max()) + 1 if len(task) else 0
    first = np.full(n_tasks, len(task), dtype=np.int64)
    np.minimum.at(first, task, np.arange(len(task)))
    t_pair = np.array([pair_index[(a[i], b[i])] for i in first], dtype=np.int64)
    k = info.k
    return PairwiseData(
        info=info,
        pairs=pair_keys,
        value=value,
        task=task,
        rater=rater,
        raters=raters,
        shown_left_a=df["shown_left_a"].to_numpy(),
        image=df["image_id"].to_numpy(dtype=object),
        t_pair=t_pair,
        t_sum=np.bincount(task, weights=value, minlength=n_tasks).astype(np.int64),
        t_sumsq=np.bincount(task, weights=value * value, minlength=n_tasks).astype(np.int64),
        t_n=np.bincount(task, minlength=n_tasks).astype(np.int64),
        t_counts=agreement.value_counts(task, value + k, n_tasks, 2 * k + 1),
    )


def _unique_pairs(a: np.ndarray, b: np.ndarray):
    pairs = pd.DataFrame({"a": a, "b": b}).drop_duplicates()
    return pairs["a"].to_numpy(), pairs["b"].to_numpy()


def _rater_sums(d: PairwiseData, group_of_row: np.ndarray, signed: np.ndarray, n_groups: int):
    """(R, G) sums of ``signed`` and counts per rater and group (group -1 = none)."""
    r = len(d.raters)
    keep = group_of_row >= 0
    flat = d.rater[keep] * n_groups + group_of_row[keep]
    num = np.bincount(flat, weights=signed[keep], minlength=r * n_groups).reshape(r, n_groups)
    den = np.bincount(flat, minlength=r * n_groups).reshape(r, n_groups)
    return num, den


def means(d: PairwiseData, boot: Bootstrapper) -> pd.DataFrame:
    """Table 4: mean encoded answer per pair, with the answers' s.d. (ddof 1) and a CI."""
    rows = []
    theta = []
    groups = []
    for p, (a, b) in enumerate(d.pairs):
        tasks = d.t_pair == p
        n = int(d.t_n[tasks].sum())
        s = float(d.t_sum[tasks].sum())
        ss = float(d.t_sumsq[tasks].sum())
        mean = s / n
        sd = float(np.sqrt(max(ss - n * mean * mean, 0.0) / (n - 1))) if n > 1 else float("nan")
        rows.append(
            {
                "experiment": d.info.name,
                "condition_a": a,
                "condition_b": b,
                "n_answers": n,
                "mean": mean,
                "sd": sd,
                "n_tasks": int(tasks.sum()),
            }
        )
        theta.append(mean)
        groups.append((d.t_sum[tasks], d.t_n[tasks]))
    row_pair = d.t_pair[d.task]
    num, den = _rater_sums(d, row_pair, d.value.astype(float), len(d.pairs))
    low, high = boot.ratio_ci(np.array(theta), groups, num, den)
    out = pd.DataFrame(rows)
    out["ci_low"], out["ci_high"] = low, high
    return out


def explainability_index(d: PairwiseData, boot: Bootstrapper) -> pd.DataFrame:
    """Table 5: per condition, mean of all answers in tasks containing it, from its view."""
    rows, theta, groups = [], [], []
    conds = list(d.info.conditions)
    nums, dens = [], []
    for c in conds:
        tasks, sign = d.condition_tasks(c)
        n = int(d.t_n[tasks].sum())
        s = float((sign * d.t_sum)[tasks].sum())
        index = s / n if n else float("nan")
        rows.append(
            {
                "experiment": d.info.name,
                "condition": c,
                "n_answers": n,
                "index": index,
                "n_tasks": int(tasks.sum()),
            }
        )
        theta.append(index)
        groups.append(((sign * d.t_sum)[tasks], d.t_n[tasks]))
        row_sign = sign[d.task]
        group = np.where(row_sign != 0, 0, -1)
        num, den = _rater_sums(d, group, row_sign * d.value.astype(float), 1)
        nums.append(num[:, 0])
        dens.append(den[:, 0])
    low, high = boot.ratio_ci(np.array(theta), groups, np.stack(nums, 1), np.stack(dens, 1))
    out = pd.DataFrame(rows)
    out["ci_low"], out["ci_high"] = low, high
    return out[["experiment", "condition", "n_answers", "index", "ci_low", "ci_high", "n_tasks"]]


def agreement_table(d: PairwiseData) -> pd.DataFrame:
    """Tables 1 and 3: alpha (interval, ordinal) and mean per-task s.d.

    Scopes: all tasks; per condition (tasks containing it); per pair. The mean
    s.d. is over tasks with at least two answers (one answer has no spread).
    """
    sd = agreement.population_sd(d.t_sum, d.t_sumsq, d.t_n)
    scopes: list[tuple[str, str, np.ndarray]] = [("total", "", np.ones(len(d.t_n), bool))]
    for c in d.info.conditions:
        scopes.append(("condition", c, d.condition_tasks(c)[0]))
    for p, (a, b) in enumerate(d.pairs):
        scopes.append(("pair", f"{a}~{b}", d.t_pair == p))
    rows = []
    for scope, key, mask in scopes:
        counts = d.t_counts[mask]
        multi = mask & (d.t_n >= 2)
        rows.append(
            {
                "experiment": d.info.name,
                "scope": scope,
                "key": key,
                "n_tasks": int(mask.sum()),
                "alpha_interval": agreement.alpha(counts, "interval", d.domain),
                "alpha_ordinal": agreement.alpha(counts, "ordinal", d.domain),
                "mean_task_sd": float(sd[multi].mean()) if multi.any() else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def shares(d: PairwiseData) -> pd.DataFrame:
    """Table 2: share 'a more'/'b more' among non-equal answers; share of 'equal'."""
    k = d.k
    rows = []
    for p, (a, b) in enumerate(d.pairs):
        c = d.t_counts[d.t_pair == p].sum(axis=0)
        more_a = int(c[k + 1 :].sum())
        more_b = int(c[:k].sum())
        equal = int(c[k])
        nonequal = more_a + more_b
        total = nonequal + equal
        rows.append(
            {
                "experiment": d.info.name,
                "condition_a": a,
                "condition_b": b,
                "share_a_more": more_a / nonequal if nonequal else float("nan"),
                "share_b_more": more_b / nonequal if nonequal else float("nan"),
                "share_equal": equal / total if total else float("nan"),
                "n_answers": total,
            }
        )
    return pd.DataFrame(rows)


def distribution(d: PairwiseData) -> pd.DataFrame:
    """Figures 6/7/15: answer counts per pair and value (every value, zeros included)."""
    rows = []
    for p, (a, b) in enumerate(d.pairs):
        c = d.t_counts[d.t_pair == p].sum(axis=0)
        for j, v in enumerate(d.domain):
            rows.append(
                {
                    "experiment": d.info.name,
                    "condition_a": a,
                    "condition_b": b,
                    "answer": int(v),
                    "count": int(c[j]),
                }
            )
    return pd.DataFrame(rows)


def significance(d: PairwiseData) -> pd.DataFrame:
    """Per pair: is the mean answer different from 0? Unit = task (its mean answer).

    Wilcoxon signed-rank (Pratt: zero differences kept in the ranking) and a
    one-sample t-test on the per-task means; Holm is applied by the caller over
    the experiment's family.
    """
    rows = []
    task_mean = d.t_sum / np.maximum(d.t_n, 1)
    for p, (a, b) in enumerate(d.pairs):
        rows += zero_difference_rows(
            task_mean[d.t_pair == p], experiment=d.info.name, condition_a=a, condition_b=b,
            names=("wilcoxon_task_means", "t_task_means"),
        )  # fmt: skip
    return pd.DataFrame(rows)


def position_bias(d: PairwiseData) -> dict:
    """Left/right bias: answers re-expressed from the left map's point of view.

    With sides randomised the true preference cancels out, so under no bias
    'left more' and 'right more' are equally likely (binomial test on the
    non-equal answers) and the mean left-view answer is 0 (t-test over tasks'
    mean left-view answers, the task being the independent unit). Also checks
    the randomisation itself: share of answers with condition_a on the left.
    """
    left = np.where(d.shown_left_a, d.value, -d.value)
    n = len(left)
    n_left = int((left > 0).sum())
    n_right = int((left < 0).sum())
    nonequal = n_left + n_right
    binom_p = float(stats.binomtest(n_left, nonequal, 0.5).pvalue) if nonequal else float("nan")
    t_sum = np.bincount(d.task, weights=left, minlength=len(d.t_n))
    tm = t_sum / np.maximum(d.t_n, 1)
    t_p = (
        float(stats.ttest_1samp(tm, 0.0).pvalue) if len(tm) > 1 and np.std(tm) > 0 else float("nan")
    )
    n_a_left = int(d.shown_left_a.sum())
    return {
        "experiment": d.info.name,
        "n_answers": n,
        "mean_left_view": float(left.mean()) if n else float("nan"),
        "n_left_more": n_left,
        "n_right_more": n_right,
        "share_left_more": n_left / nonequal if nonequal else float("nan"),
        "binom_p": binom_p,
        "t_p_task_means": t_p,
        "share_a_shown_left": n_a_left / n if n else float("nan"),
        "randomisation_binom_p": float(stats.binomtest(n_a_left, n, 0.5).pvalue)
        if n
        else float("nan"),
    }


def per_image_index(d: PairwiseData) -> pd.DataFrame:
    """Explainability index per (condition, image): for per-image correlations."""
    frames = []
    for c in d.info.conditions:
        tasks, sign = d.condition_tasks(c)
        row_sign = sign[d.task]
        m = row_sign != 0
        g = pd.DataFrame({"image_id": d.image[m], "v": (row_sign * d.value)[m]})
        agg = g.groupby("image_id", sort=True)["v"].agg(["mean", "size"]).reset_index()
        agg.insert(0, "condition", c)
        frames.append(agg.rename(columns={"mean": "human", "size": "n_answers"}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
