"""Forced-choice experiments (Experiment 2): Tables 6-9 and Figure 9.

accuracy = correct / all answers, error rate = wrong class / all answers,
indecisive = 'idk' / all answers; the three add up to 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from . import agreement
from .bootstrap import Bootstrapper
from .loading import IDK, ExperimentInfo
from .testing import zero_difference_rows


@dataclass
class ForcedChoiceData:
    info: ExperimentInfo
    cond: np.ndarray  # (N,) index into info.conditions
    true_cls: np.ndarray  # (N,) index into info.classes
    answer: np.ndarray  # (N,) index into info.classes + ("idk",)
    task: np.ndarray  # (N,) local task index
    rater: np.ndarray  # (N,) local rater index
    raters: np.ndarray
    image: np.ndarray  # (N,) image ids

    @property
    def labels(self) -> tuple[str, ...]:
        return (*self.info.classes, IDK)

    @property
    def correct(self) -> np.ndarray:
        return self.answer == self.true_cls

    @property
    def idk(self) -> np.ndarray:
        return self.answer == len(self.info.classes)


def build(df: pd.DataFrame, info: ExperimentInfo) -> ForcedChoiceData:
    def index_of(col: str, labels) -> np.ndarray:
        cat = df[col].cat
        lookup = {lab: i for i, lab in enumerate(labels)}
        per_cat = np.array([lookup.get(str(c).strip(), -1) for c in cat.categories], dtype=np.int64)
        return per_cat[cat.codes.to_numpy()] if len(per_cat) else np.zeros(len(df), np.int64)

    _, task = np.unique(df["task"].to_numpy(), return_inverse=True)
    used, rater = np.unique(df["rater"].cat.codes.to_numpy(), return_inverse=True)
    return ForcedChoiceData(
        info=info,
        cond=index_of("condition_a", info.conditions),
        true_cls=index_of("image_class", info.classes),
        answer=index_of("answer", (*info.classes, IDK)),
        task=task,
        rater=rater,
        raters=np.asarray(df["rater"].cat.categories, dtype=object)[used],
        image=df["image_id"].to_numpy(dtype=object),
    )


def _rates(n: int, correct: int, idk: int) -> dict:
    if n == 0:
        return {"n_answers": 0, "accuracy": np.nan, "error_rate": np.nan, "indecisive_rate": np.nan}
    return {
        "n_answers": n,
        "accuracy": correct / n,
        "error_rate": (n - correct - idk) / n,
        "indecisive_rate": idk / n,
    }


def summary(d: ForcedChoiceData, boot: Bootstrapper) -> pd.DataFrame:
    """Table 7 per condition, with a bootstrap CI on the accuracy."""
    c = len(d.info.conditions)
    n = np.bincount(d.cond, minlength=c)
    ok = np.bincount(d.cond, weights=d.correct, minlength=c).astype(np.int64)
    idk = np.bincount(d.cond, weights=d.idk, minlength=c).astype(np.int64)
    rows = [
        {"experiment": d.info.name, "condition": name, **_rates(int(n[i]), int(ok[i]), int(idk[i]))}
        for i, name in enumerate(d.info.conditions)
    ]
    out = pd.DataFrame(rows)
    n_tasks = int(d.task.max()) + 1 if len(d.task) else 0
    t_ok = np.bincount(d.task, weights=d.correct, minlength=n_tasks)
    t_n = np.bincount(d.task, minlength=n_tasks)
    t_cond = np.zeros(n_tasks, np.int64)
    t_cond[d.task] = d.cond
    groups = [(t_ok[t_cond == i], t_n[t_cond == i]) for i in range(c)]
    r = len(d.raters)
    flat = d.rater * c + d.cond
    r_ok = np.bincount(flat, weights=d.correct, minlength=r * c).reshape(r, c)
    r_n = np.bincount(flat, minlength=r * c).reshape(r, c)
    low, high = boot.ratio_ci(out["accuracy"].to_numpy(float), groups, r_ok, r_n)
    out["accuracy_ci_low"], out["accuracy_ci_high"] = low, high
    out["n_tasks"] = [int((t_cond == i).sum()) for i in range(c)]
    return out


def per_class(d: ForcedChoiceData) -> pd.DataFrame:
    """Tables 8 and 9: the rates per condition and true class."""
    c, k = len(d.info.conditions), len(d.info.classes)
    flat = d.cond * k + d.true_cls
    n = np.bincount(flat, minlength=c * k)
    ok = np.bincount(flat, weights=d.correct, minlength=c * k).astype(np.int64)
    idk = np.bincount(flat, weights=d.idk, minlength=c * k).astype(np.int64)
    rows = []
    for i, cond in enumerate(d.info.conditions):
        for j, cls in enumerate(d.info.classes):
            f = i * k + j
            if n[f] == 0:
                continue
            rows.append(
                {
                    "experiment": d.info.name,
                    "condition": cond,
                    "class": cls,
                    **_rates(int(n[f]), int(ok[f]), int(idk[f])),
                }
            )
    return pd.DataFrame(rows)


def confusion(d: ForcedChoiceData, cond_index: int) -> pd.DataFrame:
    """Figure 9: true class (rows) x answered class and idk (columns), counts."""
    k, v = len(d.info.classes), len(d.labels)
    m = d.cond == cond_index
    mat = np.bincount(d.true_cls[m] * v + d.answer[m], minlength=k * v).reshape(k, v)
    out = pd.DataFrame(mat, columns=list(d.labels))
    out.insert(0, "true_class", list(d.info.classes))
    return out


def agreement_table(d: ForcedChoiceData) -> pd.DataFrame:
    """Table 6: nominal alpha over tasks, total and per condition."""
    n_tasks = int(d.task.max()) + 1 if len(d.task) else 0
    counts = agreement.value_counts(d.task, d.answer, n_tasks, len(d.labels))
    t_cond = np.zeros(n_tasks, np.int64)
    t_cond[d.task] = d.cond
    rows = [
        {
            "experiment": d.info.name,
            "scope": "total",
            "key": "",
            "n_tasks": n_tasks,
            "alpha_nominal": agreement.alpha(counts, "nominal"),
        }
    ]
    for i, cond in enumerate(d.info.conditions):
        m = t_cond == i
        rows.append(
            {
                "experiment": d.info.name,
                "scope": "condition",
                "key": cond,
                "n_tasks": int(m.sum()),
                "alpha_nominal": agreement.alpha(counts[m], "nominal"),
            }
        )
    return pd.DataFrame(rows)


def per_image_accuracy(d: ForcedChoiceData) -> pd.DataFrame:
    """Accuracy per (condition, image): the unit of the paired tests and correlations."""
    g = pd.DataFrame(
        {
            "condition": np.asarray(d.info.conditions, dtype=object)[d.cond],
            "image_id": d.image,
            "correct": d.correct,
        }
    )
    agg = g.groupby(["condition", "image_id"], sort=True)["correct"].agg(["mean", "size"])
    return agg.reset_index().rename(columns={"mean": "human", "size": "n_answers"})


def significance(d: ForcedChoiceData, per_image: pd.DataFrame) -> pd.DataFrame:
    """Accuracy differences between conditions, paired by image.

    Each image was shown under every condition, so per-image accuracies form
    pairs; Wilcoxon signed-rank (Pratt) and a paired t-test on the differences.
    Holm is applied by the caller.
    """
    wide = per_image.pivot(index="image_id", columns="condition", values="human")
    rows = []
    for a, b in combinations(d.info.conditions, 2):
        if a not in wide or b not in wide:
            continue
        both = wide[[a, b]].dropna()
        diff = (both[a] - both[b]).to_numpy()
        rows += zero_difference_rows(
            diff, experiment=d.info.name, condition_a=a, condition_b=b,
            names=("wilcoxon_image_accuracy", "paired_t_image_accuracy"),
        )  # fmt: skip
    return pd.DataFrame(rows)
