"""Tests of zero difference and multiple-comparison correction."""

from __future__ import annotations

import numpy as np
from scipy import stats


def holm(p_values) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (NaN entries stay NaN, not counted)."""
    p = np.asarray(p_values, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adjusted
    return out


def zero_difference_rows(
    x: np.ndarray, *, experiment: str, condition_a: str, condition_b: str, names: tuple[str, str]
) -> list[dict]:
    """Is the centre of ``x`` (one value per independent unit) zero?

    Two rows, named ``names``: Wilcoxon signed-rank (Pratt: zero differences
    kept in the ranking) and a one-sample t-test. A test that is undefined
    (fewer than 2 units, all zero, or no spread) reports NaN. Holm is applied
    by the caller over the experiment's family.
    """
    n = len(x)
    w_stat = w_p = t_stat = t_p = float("nan")
    if n >= 2 and np.any(x != 0):
        w = stats.wilcoxon(x, zero_method="pratt")
        w_stat, w_p = float(w.statistic), float(w.pvalue)
    if n >= 2 and np.std(x) > 0:
        t = stats.ttest_1samp(x, 0.0)
        t_stat, t_p = float(t.statistic), float(t.pvalue)
    estimate = float(x.mean()) if n else float("nan")
    return [
        {
            "experiment": experiment,
            "condition_a": condition_a,
            "condition_b": condition_b,
            "test": name,
            "n_units": n,
            "estimate": estimate,
            "statistic": st,
            "p_value": pv,
        }
        for name, st, pv in ((names[0], w_stat, w_p), (names[1], t_stat, t_p))
    ]
