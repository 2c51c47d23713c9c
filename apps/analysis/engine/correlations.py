"""Correlation of human results with explanation metrics and model accuracy.

Human measure: the explainability index (pairwise experiments) or the
accuracy (forced choice). Levels: ``condition`` (one point per condition,
metrics averaged over the condition's images) and ``image`` (one point per
(condition, image) stimulus, human measure from that stimulus' answers).
Pearson and Spearman with their p-values; n is reported because per-condition
correlations rest on 4-5 points.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from .errors import AnalysisInputError

METRIC_COLUMNS = ("gini", "rma", "rra", "deletion_auc")


def read_table(obj, required: tuple[str, ...], what: str) -> pd.DataFrame:
    """Read an optional side table (path or DataFrame) and check its columns and numbers."""
    source = "" if isinstance(obj, pd.DataFrame) else str(obj)
    df = (
        obj.copy()
        if isinstance(obj, pd.DataFrame)
        else pd.read_csv(Path(obj), dtype=str, keep_default_na=False)
    )
    df.columns = [str(c).strip() for c in df.columns]
    for c in required:
        if c not in df.columns:
            raise AnalysisInputError(f"{what}: missing required column", column=c, source=source)
    for c in df.columns:
        if c in ("condition", "image_id"):
            df[c] = df[c].astype(str).str.strip()
            continue
        if c not in (*METRIC_COLUMNS, "test_accuracy"):
            continue
        raw = df[c].astype(str).str.strip()
        num = pd.to_numeric(raw.replace("", np.nan), errors="coerce")
        bad = num.isna() & (raw != "") & (raw.str.lower() != "nan")
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise AnalysisInputError(
                f"{what}: {raw.iloc[i]!r} is not a number", row=i + 1, column=c, source=source
            )
        df[c] = num.astype(float)
    return df


def _corr(x: np.ndarray, y: np.ndarray) -> dict:
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = len(x)
    out = {
        "n": n,
        "pearson_r": np.nan,
        "pearson_p": np.nan,
        "spearman_rho": np.nan,
        "spearman_p": np.nan,
    }
    if n >= 3 and np.std(x) > 0 and np.std(y) > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pr = stats.pearsonr(x, y)
            sr = stats.spearmanr(x, y)
        out.update(
            pearson_r=float(pr.statistic),
            pearson_p=float(pr.pvalue),
            spearman_rho=float(sr.statistic),
            spearman_p=float(sr.pvalue),
        )
    return out


def correlate(
    experiment: str,
    measure: str,
    per_condition: pd.DataFrame,
    per_image: pd.DataFrame,
    metrics: pd.DataFrame | None,
    model_accuracy: pd.DataFrame | None,
) -> list[dict]:
    """Rows for correlations.csv.

    ``per_condition``: columns condition, human. ``per_image``: condition,
    image_id, human.
    """
    rows: list[dict] = []
    if metrics is not None:
        names = [c for c in METRIC_COLUMNS if c in metrics.columns]
        mean_metrics = metrics.groupby("condition")[names].mean()
        cond = per_condition.set_index("condition").join(mean_metrics, how="inner")
        img = per_image.merge(metrics, on=["condition", "image_id"], how="inner")
        for m in names:
            rows.append(
                {
                    "experiment": experiment,
                    "level": "condition",
                    "human_measure": measure,
                    "metric": m,
                    **_corr(cond["human"].to_numpy(float), cond[m].to_numpy(float)),
                }
            )
            rows.append(
                {
                    "experiment": experiment,
                    "level": "image",
                    "human_measure": measure,
                    "metric": m,
                    **_corr(img["human"].to_numpy(float), img[m].to_numpy(float)),
                }
            )
    if model_accuracy is not None:
        acc = model_accuracy.groupby("condition")["test_accuracy"].mean()
        cond = per_condition.set_index("condition").join(acc, how="inner")
        rows.append(
            {
                "experiment": experiment,
                "level": "condition",
                "human_measure": measure,
                "metric": "test_accuracy",
                **_corr(cond["human"].to_numpy(float), cond["test_accuracy"].to_numpy(float)),
            }
        )
    return rows
