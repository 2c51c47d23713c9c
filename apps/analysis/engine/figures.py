"""Figures (PNG and SVG) drawn from the result tables with matplotlib's Agg backend."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .conditions import parse_cpr, safe_name  # noqa: E402


def _save(fig, out_dir: Path, stem: str) -> list[Path]:
    paths = []
    fig.tight_layout()  # once; bbox_inches="tight" would lay out every save again
    for ext in ("png", "svg"):
        p = out_dir / f"{stem}.{ext}"
        fig.savefig(p, dpi=110)
        paths.append(p)
    plt.close(fig)
    return paths


def _cpr_points(df: pd.DataFrame, value: str):
    pts = [(parse_cpr(c), v) for c, v in zip(df["condition"], df[value], strict=True)]
    pts = sorted((c, v) for c, v in pts if c is not None)
    return [c for c, _ in pts], [v for _, v in pts]


def figure2(
    index: pd.DataFrame,
    fc_summary: pd.DataFrame,
    model_accuracy: pd.DataFrame | None,
    out_dir: Path,
):
    """Figure 2: model test accuracy, human accuracy (left axis) and index (right) against CPR."""
    if index.empty and fc_summary.empty and model_accuracy is None:
        return []
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax2 = ax.twinx()
    plotted = False
    if model_accuracy is not None and not model_accuracy.empty:
        x, y = _cpr_points(
            model_accuracy.groupby("condition", as_index=False)["test_accuracy"].mean(),
            "test_accuracy",
        )
        if x:
            ax.plot(x, y, "o-", color="tab:blue", label="model top-1 test accuracy")
            plotted = True
    for exp, g in fc_summary.groupby("experiment", sort=True):
        x, y = _cpr_points(g, "accuracy")
        if x:
            ax.plot(x, y, "s-", color="tab:cyan", label=f"human-rater accuracy ({exp})")
            plotted = True
    for n, (exp, g) in enumerate(index.groupby("experiment", sort=True)):
        x, y = _cpr_points(g, "index")
        if x:
            color = ("tab:orange", "tab:red", "tab:brown", "tab:pink")[n % 4]
            ax2.plot(x, y, "^-", color=color, label=f"explainability index ({exp})")
            plotted = True
    if not plotted:
        plt.close(fig)
        return []
    ax.set_xscale("log", base=2)
    ax.set_xlabel("compression ratio (CPR, conv layers)")
    ax.set_ylabel("accuracy")
    ax2.set_ylabel("explainability index")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="lower left")
    ax.set_title("Accuracy and explainability against CPR")
    return _save(fig, out_dir, "figure2_cpr")


def answer_distribution(dist: pd.DataFrame, experiment: str, out_dir: Path):
    """Figures 6/15: answer counts per pair, one panel per pair."""
    g = dist[dist["experiment"] == experiment]
    pairs = list(dict.fromkeys(zip(g["condition_a"], g["condition_b"], strict=True)))
    if not pairs:
        return []
    cols = min(3, len(pairs))
    rows = int(np.ceil(len(pairs) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, (a, b) in zip(axes.flat, pairs, strict=False):
        s = g[(g["condition_a"] == a) & (g["condition_b"] == b)]
        ax.bar(s["answer"], s["count"], color="tab:orange")
        ax.set_title(f"{a} vs {b}", fontsize=9)
        ax.set_xticks(s["answer"])
        ax.set_xlabel(f"answer ({a}'s view)", fontsize=8)
    for ax in axes.flat[len(pairs) :]:
        ax.axis("off")
    fig.suptitle(f"Answer distribution: {experiment}")
    return _save(fig, out_dir, f"answers_{safe_name(experiment)}")


def index_with_ci(index: pd.DataFrame, experiment: str, out_dir: Path):
    """Figure 7 style: explainability index per condition with its bootstrap CI."""
    g = index[index["experiment"] == experiment]
    if g.empty:
        return []
    fig, ax = plt.subplots(figsize=(1.2 * len(g) + 2, 3.5))
    x = np.arange(len(g))
    y = g["index"].to_numpy(float)
    lo = y - g["ci_low"].to_numpy(float)
    hi = g["ci_high"].to_numpy(float) - y
    # A percentile CI need not contain the estimate; clip so error bars stay drawable.
    err = (
        None
        if np.all(np.isnan(lo))
        else np.clip(np.vstack([np.nan_to_num(lo), np.nan_to_num(hi)]), 0, None)
    )
    ax.errorbar(x, y, yerr=err, fmt="o", capsize=4, color="tab:orange")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(x, g["condition"])
    ax.set_ylabel("explainability index")
    ax.set_title(f"Explainability index: {experiment}")
    return _save(fig, out_dir, f"index_{safe_name(experiment)}")


def confusions(matrices: dict[str, pd.DataFrame], experiment: str, out_dir: Path):
    """Figure 9: one confusion matrix per condition (row shares as colours; counts are in the CSVs)."""
    if not matrices:
        return []
    n = len(matrices)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 4.2), squeeze=False)
    for ax, (cond, m) in zip(axes.flat, matrices.items(), strict=True):
        counts = m.drop(columns="true_class").to_numpy(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = counts / counts.sum(axis=1, keepdims=True)
        ax.imshow(np.nan_to_num(share), cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(counts.shape[1]), list(m.columns[1:]), rotation=90, fontsize=7)
        ax.set_yticks(range(counts.shape[0]), list(m["true_class"]), fontsize=7)
        ax.set_title(cond, fontsize=9)
        ax.set_xlabel("answer", fontsize=8)
    axes.flat[0].set_ylabel("true class", fontsize=8)
    fig.suptitle(f"Confusion matrices: {experiment}")
    return _save(fig, out_dir, f"confusion_{safe_name(experiment)}")
