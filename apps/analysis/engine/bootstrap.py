"""Vectorised bootstrap for ratio statistics (means and rates).

Every statistic here is a ratio of sums, sum(numerator) / sum(denominator),
over the answers of a group (a pair, the tasks containing a condition, a
condition's forced-choice answers).

* Tasks: resampling the T tasks of a group with replacement only depends on
  how many tasks of each *type* (distinct (numerator, denominator) aggregate)
  are drawn; with 5 answers on a 5-point scale there are at most 21 types.
  One ``multinomial(T, type_shares, size=B)`` gives all B replicates exactly,
  whatever T is.
* Raters: multinomial counts per rater (B x R; raters drawn with replacement),
  applied to rater-level sums by a matrix product, shared by all groups of a
  replicate.
* Both ("two-way"): tasks and raters are crossed, not nested. Following Owen
  (2007, "The pigeonhole bootstrap") the variance of a crossed mean is close to
  the sum of the two one-way variances, so a replicate of the crossed
  bootstrap is taken as theta + (task replicate - theta) + (rater replicate -
  theta). Slightly conservative; documented in the output README.
"""

from __future__ import annotations

import numpy as np


def task_replicates(
    num: np.ndarray, den: np.ndarray, rng: np.random.Generator, n_boot: int
) -> np.ndarray:
    """(n_boot,) replicates of sum(num)/sum(den) with the tasks resampled.

    ``num`` and ``den`` are per-task aggregates of one group (same length).
    """
    if len(num) == 0:
        return np.full(n_boot, np.nan)
    pairs = np.stack([num, den], axis=1)
    types, counts = np.unique(pairs, axis=0, return_counts=True)
    draws = rng.multinomial(len(num), counts / counts.sum(), size=n_boot)  # (B, U)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (draws @ types[:, 0]) / (draws @ types[:, 1])


def rater_weights(n_raters: int, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """(n_boot, n_raters) classic bootstrap weights: how often each rater is drawn.

    Drawing n_raters indices per replicate and counting them (one bincount over
    all replicates) is several times faster than Poisson weights and keeps the
    resample size fixed. float32 halves the memory of the matrix product.
    """
    draws = rng.integers(0, n_raters, size=(n_boot, n_raters), dtype=np.int64)
    draws += (np.arange(n_boot, dtype=np.int64) * n_raters)[:, None]
    counts = np.bincount(draws.ravel(), minlength=n_boot * n_raters)
    return counts.reshape(n_boot, n_raters).astype(np.float32)


def rater_replicates(num: np.ndarray, den: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(n_boot, G) replicates from (R, G) rater-level sums and (B, R) weights."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (weights @ num.astype(np.float32)) / (weights @ den.astype(np.float32))


def combine(
    theta: np.ndarray, task_rep: np.ndarray | None, rater_rep: np.ndarray | None
) -> np.ndarray:
    """Two-way replicates (see module doc); either part may be None."""
    out = np.broadcast_to(theta, (task_rep if task_rep is not None else rater_rep).shape).copy()
    if task_rep is not None:
        out += task_rep - theta
    if rater_rep is not None:
        out += rater_rep - theta
    return out


def percentile_ci(replicates: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval along axis 0, ignoring undefined replicates."""
    lo = (1 - level) / 2 * 100
    with np.errstate(invalid="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            low = np.nanpercentile(replicates, lo, axis=0)
            high = np.nanpercentile(replicates, 100 - lo, axis=0)
    return low, high


class Bootstrapper:
    """Holds the replicate count, the RNG and the units to resample.

    ``units``: "tasks", "raters" or "both". ``n_boot = 0`` switches CIs off
    (they come out as NaN).
    """

    def __init__(self, *, n_boot: int, seed: int, level: float, units: str = "both") -> None:
        if units not in ("tasks", "raters", "both"):
            raise ValueError(f"bootstrap units must be tasks, raters or both, not {units!r}")
        self.n_boot = n_boot
        self.rng = np.random.default_rng(seed)
        self.level = level
        self.units = units

    def ratio_ci(
        self,
        theta: np.ndarray,
        task_groups: list[tuple[np.ndarray, np.ndarray]],
        rater_num: np.ndarray,
        rater_den: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """CIs for G ratio statistics.

        ``task_groups[g]`` = (per-task numerators, per-task denominators) of
        group g; ``rater_num``/``rater_den`` are (R, G) rater-level sums.
        """
        g = len(theta)
        if self.n_boot <= 0 or g == 0:
            return np.full(g, np.nan), np.full(g, np.nan)
        task_rep = None
        rater_rep = None
        if self.units in ("tasks", "both"):
            task_rep = np.stack(
                [task_replicates(n, d, self.rng, self.n_boot) for n, d in task_groups], axis=1
            )
        if self.units in ("raters", "both"):
            w = rater_weights(rater_num.shape[0], self.rng, self.n_boot)
            rater_rep = rater_replicates(rater_num, rater_den, w)
        reps = combine(np.asarray(theta, float), task_rep, rater_rep)
        return percentile_ci(reps, self.level)
