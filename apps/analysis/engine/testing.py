"""Multiple-comparison correction."""

from __future__ import annotations

import numpy as np


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
