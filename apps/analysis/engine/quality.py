"""Per-rater quality and the rules that exclude a rater's data.

Figures (one row per rater, or per rater and experiment): real-task answers
(``n_answers``, ``n_pairwise``, ``median_ms``, ``share_left_more``,
``distinct_buttons``, ``n_reopened``) come from ``Responses.df``; the check
items from ``Responses.checks``: attention checks (``n_attention``,
``attention_failed``, ``attention_accuracy``), scored catch trials
(``n_catch``, ``catch_accuracy``) and consistency probes (``n_probes``,
``consistency``). Over-quota and reopened answers count: they are the rater's.

Rules (all configurable through :class:`QualityRules`; a rule whose data is
absent does not fire). They decide whose *data* the tables leave out; who is
*paid* is a separate, fairer policy (:mod:`apps.recruitment.services.paying`:
only failed attention checks can lead to a rejection).

* ``attention``: at least ``max_attention_failures`` (default 1) failed
  attention checks. An attention check is an instructed-response item (the
  question names the option to choose), so one wrong answer already shows the
  rater was not reading the question.
* ``catch``: catch-trial accuracy below ``min_catch_accuracy`` (default 0.5)
  with at least ``min_catch_answers`` (default 1) scored catch answers. A
  forced-choice catch answer is right when it names the expected class; a
  pairwise one when its sign is the expected one (new files: ``expected`` "a",
  any answer > 0; older files: the sign of ``catch_expected``).
* ``consistency``: consistency below ``min_consistency`` (default 0.5) with at
  least ``min_probes`` (default 2) probes. A pairwise probe is consistent when
  its answer has the same *sign* as the original's (both from condition_a's
  view: A more / equal / B more): the direction is the judgement the study
  measures, while the step size (1 or 2) is test-retest noise even for careful
  raters; the sides are swapped, so a rater who answers by side flips the sign.
  A forced-choice probe is consistent when it gives the same answer.
* ``side_bias``: one side's share of the non-equal pairwise answers at least
  ``max_side_share`` (default 0.9) with at least ``side_bias_min_answers``
  (default 10) of them. Sides are randomised, so an attentive rater's share
  is about 0.5 whatever they prefer; 9 of 10 on one side by chance: p = 0.02.
* ``straight_lining``: at least ``straight_line_min_answers`` (default 10)
  answers, all with the same ``answer_raw`` (the same button every time).
* ``too_fast``: median response time below ``min_median_ms`` (default 1000).
* ``flagged``: any of the rater's rows has ``excluded`` set in the input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .checks import ATTENTION, CATCH, PROBE
from .loading import PAIRWISE, Responses

QUALITY_COLUMNS: tuple[str, ...] = (
    "rater_id",
    "rater_source",
    "n_answers",
    "n_pairwise",
    "median_ms",
    "share_left_more",
    "n_catch",
    "catch_accuracy",
    "n_attention",
    "attention_failed",
    "attention_accuracy",
    "n_probes",
    "consistency",
    "distinct_buttons",
    "n_reopened",
    "excluded",
    "reasons",
)
RULES: tuple[str, ...] = (
    "attention",
    "catch",
    "consistency",
    "side_bias",
    "straight_lining",
    "too_fast",
    "flagged",
)


@dataclass(frozen=True)
class QualityRules:
    max_attention_failures: int = 1
    min_catch_accuracy: float = 0.5
    min_catch_answers: int = 1
    min_consistency: float = 0.5
    min_probes: int = 2
    max_side_share: float = 0.9
    side_bias_min_answers: int = 10
    straight_line_min_answers: int = 10
    min_median_ms: float = 1000.0

    def describe(self) -> list[str]:
        return [
            f"attention: >= {self.max_attention_failures} failed attention checks "
            "(instructed-response items: the question names the answer)",
            f"catch: catch-trial accuracy < {self.min_catch_accuracy:g} "
            f"(raters with >= {self.min_catch_answers} scored catch answers)",
            f"consistency: consistency < {self.min_consistency:g} "
            f"(raters with >= {self.min_probes} probes; pairwise: same sign as the "
            "original answer, sides swapped; forced choice: same answer)",
            f"side_bias: >= {self.max_side_share:g} of the non-equal pairwise answers for one "
            f"side (raters with >= {self.side_bias_min_answers} such answers)",
            f"straight_lining: >= {self.straight_line_min_answers} answers, all the same button",
            f"too_fast: median response time < {self.min_median_ms:g} ms",
            "flagged: a row of the rater has `excluded` set in the input",
        ]


def _real_figures(responses: Responses, keys: list[str]) -> pd.DataFrame:
    df = responses.df
    kinds = {name: info.kind for name, info in responses.experiments.items()}
    per_experiment = np.asarray(
        [kinds.get(str(e)) == PAIRWISE for e in df["experiment"].cat.categories], bool
    )
    codes = df["experiment"].cat.codes.to_numpy()
    is_pairwise = per_experiment[codes] if len(per_experiment) else np.zeros(len(df), bool)
    value = df["value"].to_numpy().astype(np.int64)
    # Side bias: among a rater's non-equal pairwise answers, the share for the left map.
    left_view = np.where(df["shown_left_a"].to_numpy(), value, -value)
    rows = pd.DataFrame(
        {
            "rater_id": df["rater"],
            "experiment": df["experiment"],
            "rater_source": df["rater_source"].astype(str),
            "pairwise": is_pairwise,
            "left": is_pairwise & (left_view > 0),
            "right": is_pairwise & (left_view < 0),
            "ms": df["response_ms"].to_numpy(),
            "raw": df["answer_raw"].cat.codes.to_numpy(),
            "flag": df["excluded_flag"].to_numpy(),
            "reopened": df["reopened"].to_numpy(),
        }
    )
    return rows.groupby(keys, sort=True, observed=True).agg(
        rater_source=("rater_source", "first"),
        n_answers=("pairwise", "size"),
        n_pairwise=("pairwise", "sum"),
        n_left=("left", "sum"),
        n_right=("right", "sum"),
        median_ms=("ms", "median"),
        distinct_buttons=("raw", "nunique"),
        flagged=("flag", "any"),
        n_reopened=("reopened", "sum"),
    )


def score_checks(checks: pd.DataFrame) -> pd.DataFrame:
    """Per check row: ``scored`` and ``ok`` (right answer, or a consistent probe)."""
    kind = checks["kind"].astype(str).to_numpy()
    pairwise = checks["pairwise"].to_numpy(bool)
    answer = checks["answer"].astype(str).to_numpy()
    expected = checks["expected"].astype(str).to_numpy()
    value = checks["value"].to_numpy().astype(np.int64)
    attention = kind == ATTENTION
    catch = kind == CATCH
    probe = kind == PROBE
    # Pairwise attention: compare as integers ("+1" is "1"); validated on loading.
    expected_int = np.asarray([int(x) if attention[i] and pairwise[i] else 0
                               for i, x in enumerate(expected)], dtype=np.int64)  # fmt: skip
    attention_ok = np.where(pairwise, value == expected_int, answer == expected)
    sign = checks["catch_expected"].to_numpy(dtype=float)
    catch_scored = catch & np.where(pairwise, ~np.isnan(sign), expected != "")
    catch_ok = np.where(
        pairwise, np.sign(value) == np.sign(np.nan_to_num(sign)), answer == expected
    )
    original_value = checks["original_value"].to_numpy().astype(np.int64)
    original_answer = checks["original_answer"].astype(str).to_numpy()
    probe_ok = np.where(
        pairwise, np.sign(value) == np.sign(original_value), answer == original_answer
    )
    return pd.DataFrame(
        {
            "attention": attention,
            "attention_ok": attention & attention_ok,
            "catch": catch_scored,
            "catch_ok": catch_scored & catch_ok,
            "probe": probe,
            "probe_ok": probe & probe_ok,
        }
    )


def _check_figures(responses: Responses, keys: list[str]) -> pd.DataFrame:
    checks = responses.checks
    scored = score_checks(checks)
    scored["rater_id"] = checks["rater"].to_numpy()
    scored["experiment"] = checks["experiment"].to_numpy()
    scored["check_source"] = checks["rater_source"].astype(str).to_numpy()
    scored["check_flag"] = checks["excluded_flag"].to_numpy(bool)
    return scored.groupby(keys, sort=True, observed=True).agg(
        check_source=("check_source", "first"),
        n_attention=("attention", "sum"),
        n_attention_ok=("attention_ok", "sum"),
        n_catch=("catch", "sum"),
        n_catch_ok=("catch_ok", "sum"),
        n_probes=("probe", "sum"),
        n_probes_ok=("probe_ok", "sum"),
        check_flag=("check_flag", "any"),
    )


def rater_quality(
    responses: Responses, rules: QualityRules, *, by_experiment: bool = False
) -> pd.DataFrame:
    """One row per rater (``by_experiment``: per rater and experiment, with an
    ``experiment`` column after ``rater_id``): the figures and the rules that fire.

    Columns: :data:`QUALITY_COLUMNS`; ``reasons`` lists the rules that fire,
    ``;``-separated in :data:`RULES` order.
    """
    keys = ["rater_id", "experiment"] if by_experiment else ["rater_id"]
    real = _real_figures(responses, keys)
    checks = _check_figures(responses, keys)
    # Keys as plain strings: the check frame's categories may differ from the table's.
    for part in (real, checks):
        part.index = (
            pd.MultiIndex.from_arrays(
                [part.index.get_level_values(k).astype(str) for k in keys], names=keys
            )
            if by_experiment
            else pd.Index(part.index.astype(str), name="rater_id")
        )
    t = real.join(checks, how="outer").sort_index()
    counts = [
        "n_answers", "n_pairwise", "n_left", "n_right", "distinct_buttons", "n_reopened",
        "n_attention", "n_attention_ok", "n_catch", "n_catch_ok", "n_probes", "n_probes_ok",
    ]  # fmt: skip
    for c in counts:
        t[c] = t[c].fillna(0).astype(np.int64)
    flagged = t["flagged"].fillna(False).astype(bool) | t["check_flag"].fillna(False).astype(bool)
    source = t["rater_source"].where(t["rater_source"].notna(), t["check_source"])
    n_side = t["n_left"] + t["n_right"]
    with np.errstate(invalid="ignore", divide="ignore"):
        catch_acc = np.where(t["n_catch"] > 0, t["n_catch_ok"] / t["n_catch"], np.nan)
        attention_acc = np.where(
            t["n_attention"] > 0, t["n_attention_ok"] / t["n_attention"], np.nan
        )
        consistency = np.where(t["n_probes"] > 0, t["n_probes_ok"] / t["n_probes"], np.nan)
        side = np.where(n_side > 0, t["n_left"] / n_side, np.nan)
    attention_failed = (t["n_attention"] - t["n_attention_ok"]).to_numpy()
    median_ms = t["median_ms"].to_numpy(dtype=float)
    fires = {
        "attention": attention_failed >= max(rules.max_attention_failures, 1),
        "catch": (t["n_catch"].to_numpy() >= max(rules.min_catch_answers, 1))
        & (catch_acc < rules.min_catch_accuracy),
        "consistency": (t["n_probes"].to_numpy() >= max(rules.min_probes, 1))
        & (consistency < rules.min_consistency),
        "side_bias": (n_side.to_numpy() >= max(rules.side_bias_min_answers, 1))
        & (np.fmax(side, 1 - side) >= rules.max_side_share),
        "straight_lining": (t["n_answers"].to_numpy() >= rules.straight_line_min_answers)
        & (t["distinct_buttons"].to_numpy() == 1),
        "too_fast": median_ms < rules.min_median_ms,
        "flagged": flagged.to_numpy(),
    }
    reasons = [";".join(name for name in RULES if fires[name][i]) for i in range(len(t))]
    out = pd.DataFrame(
        {
            "rater_id": t.index.get_level_values("rater_id").astype(str),
            "rater_source": source.astype(str).to_numpy(),
            "n_answers": t["n_answers"].to_numpy(),
            "n_pairwise": t["n_pairwise"].to_numpy(),
            "median_ms": median_ms,
            "share_left_more": side,
            "n_catch": t["n_catch"].to_numpy(),
            "catch_accuracy": catch_acc,
            "n_attention": t["n_attention"].to_numpy(),
            "attention_failed": attention_failed.astype(np.int64),
            "attention_accuracy": attention_acc,
            "n_probes": t["n_probes"].to_numpy(),
            "consistency": consistency,
            "distinct_buttons": t["distinct_buttons"].to_numpy(),
            "n_reopened": t["n_reopened"].to_numpy(),
            "excluded": [bool(x) for x in reasons],
            "reasons": reasons,
        }
    )
    if by_experiment:
        out.insert(1, "experiment", t.index.get_level_values("experiment").astype(str))
    return out.reset_index(drop=True)
