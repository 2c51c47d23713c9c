"""Inter-rater agreement: Krippendorff's alpha from units-by-values counts.

Building the (units x values) count matrix with one ``bincount`` and handing it
to ``krippendorff.alpha(value_counts=...)`` avoids the (raters x units) matrix,
which is mostly empty for crowd studies (thousands of raters, five per task).
"""

from __future__ import annotations

import krippendorff
import numpy as np


def value_counts(
    unit: np.ndarray, value_index: np.ndarray, n_units: int, n_values: int
) -> np.ndarray:
    """(n_units, n_values) matrix: how many answers of each value each unit got."""
    flat = unit.astype(np.int64) * n_values + value_index
    return np.bincount(flat, minlength=n_units * n_values).reshape(n_units, n_values)


def alpha(counts: np.ndarray, level: str, value_domain=None) -> float:
    """Krippendorff's alpha, or NaN where it is undefined.

    Units with fewer than two answers carry no pairable information and are
    dropped first (the package would count them as zero anyway). Undefined
    cases: no unit with two answers, or no variation at all (expected
    disagreement 0).
    """
    counts = counts[counts.sum(axis=1) >= 2]
    if len(counts) == 0:
        return float("nan")
    used = counts.sum(axis=0) > 0
    if used.sum() < 2:
        return float("nan")
    if level == "nominal":
        counts = counts[:, used]  # unused categories do not change nominal alpha
        value_domain = None
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(
            krippendorff.alpha(
                value_counts=counts, value_domain=value_domain, level_of_measurement=level
            )
        )


def population_sd(sum_: np.ndarray, sumsq: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Per-unit population s.d. (ddof 0) from sums; exact for integer answers."""
    n = n.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = (n * sumsq - sum_.astype(float) ** 2) / (n * n)
    return np.sqrt(np.clip(var, 0.0, None))
