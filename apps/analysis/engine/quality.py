"""Per-rater quality and the rules that exclude raters.

Rules (all configurable through :class:`QualityRules`; a rule whose data is
absent does not fire):

* ``catch``: catch-trial accuracy below ``min_catch_accuracy`` when the rater
  has at least ``min_catch_answers`` scored catch answers. A forced-choice
  catch answer is correct when it names the image class; a pairwise catch
  answer is scored only when a ``catch_expected`` column gives the expected
  answer, and is correct when its sign matches.
* ``straight_lining``: at least ``straight_line_min_answers`` answers, all
  with the same ``answer_raw`` (the same button every time).
* ``too_fast``: median response time below ``min_median_ms``.
* ``flagged``: any of the rater's rows has ``excluded`` set in the input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .loading import PAIRWISE, Responses


@dataclass(frozen=True)
class QualityRules:
    min_catch_accuracy: float = 0.5
    min_catch_answers: int = 1
    straight_line_min_answers: int = 10
    min_median_ms: float = 1000.0

    def describe(self) -> list[str]:
        return [
            f"catch: catch-trial accuracy < {self.min_catch_accuracy:g} "
            f"(raters with >= {self.min_catch_answers} scored catch answers)",
            f"straight_lining: >= {self.straight_line_min_answers} answers, all the same button",
            f"too_fast: median response time < {self.min_median_ms:g} ms",
            "flagged: a row of the rater has `excluded` set in the input",
        ]


def rater_quality(responses: Responses, rules: QualityRules) -> pd.DataFrame:
    """One row per rater: activity, speed, side bias, catch accuracy, exclusion."""
    df = responses.df
    kinds = {name: info.kind for name, info in responses.experiments.items()}
    is_pairwise = (
        df["experiment"].map(lambda e: kinds[e] == PAIRWISE).astype(bool).to_numpy()
        if len(df)
        else np.zeros(0, bool)
    )
    rater = df["rater"].cat.codes.to_numpy()
    labels = np.asarray(df["rater"].cat.categories, dtype=object)
    r = len(labels)
    n = np.bincount(rater, minlength=r)

    # Side bias: among a rater's non-equal pairwise answers, the share for the left map.
    value = df["value"].to_numpy().astype(np.int64)
    left_view = np.where(df["shown_left_a"].to_numpy(), value, -value)
    n_left = np.bincount(rater, weights=is_pairwise & (left_view > 0), minlength=r)
    n_right = np.bincount(rater, weights=is_pairwise & (left_view < 0), minlength=r)
    n_pairwise = np.bincount(rater, weights=is_pairwise, minlength=r)

    # Catch trials.
    is_catch = df["is_catch"].to_numpy()
    ans = df["answer"].astype(str).to_numpy() if is_catch.any() else np.array([], object)
    scored = np.zeros(len(df), bool)
    correct = np.zeros(len(df), bool)
    if is_catch.any():
        fc_catch = is_catch & ~is_pairwise
        scored |= fc_catch
        correct |= fc_catch & (ans == df["image_class"].astype(str).to_numpy())
        expected = df["catch_expected"].to_numpy()
        pw_catch = is_catch & is_pairwise & ~np.isnan(expected)
        scored |= pw_catch
        correct |= pw_catch & (np.sign(value) == np.sign(np.nan_to_num(expected)))
    n_catch = np.bincount(rater, weights=scored, minlength=r)
    n_catch_ok = np.bincount(rater, weights=correct, minlength=r)

    # Median time and straight-lining (one button for everything).
    grp = pd.DataFrame(
        {
            "r": rater,
            "ms": df["response_ms"].to_numpy(),
            "raw": df["answer_raw"].cat.codes.to_numpy(),
        }
    )
    g = grp.groupby("r", sort=True)
    median_ms = np.full(r, np.nan)
    n_raw = np.zeros(r, np.int64)
    med = g["ms"].median()
    median_ms[med.index.to_numpy()] = med.to_numpy()
    nun = g["raw"].nunique()
    n_raw[nun.index.to_numpy()] = nun.to_numpy()
    flagged = np.bincount(rater, weights=df["excluded_flag"].to_numpy(), minlength=r) > 0
    source = df.groupby("rater", observed=True, sort=True)["rater_source"].first()

    with np.errstate(invalid="ignore", divide="ignore"):
        catch_acc = np.where(n_catch > 0, n_catch_ok / n_catch, np.nan)
        side = np.where(n_left + n_right > 0, n_left / (n_left + n_right), np.nan)
    fires = {
        "catch": (n_catch >= max(rules.min_catch_answers, 1))
        & (catch_acc < rules.min_catch_accuracy),
        "straight_lining": (n >= rules.straight_line_min_answers) & (n_raw == 1),
        "too_fast": median_ms < rules.min_median_ms,
        "flagged": flagged,
    }
    reasons = [";".join(name for name, m in fires.items() if m[i]) for i in range(r)]
    out = pd.DataFrame(
        {
            "rater_id": labels,
            "rater_source": source.reindex(labels).astype(str).to_numpy(),
            "n_answers": n,
            "n_pairwise": n_pairwise.astype(np.int64),
            "median_ms": median_ms,
            "share_left_more": side,
            "n_catch": n_catch.astype(np.int64),
            "catch_accuracy": catch_acc,
            "distinct_buttons": n_raw,
            "excluded": [bool(x) for x in reasons],
            "reasons": reasons,
        }
    )
    return out[out["n_answers"] > 0].reset_index(drop=True)
