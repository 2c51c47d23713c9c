"""Rater quality from the check items: figures and rules on crafted rows."""

from __future__ import annotations

import math

import pytest

from apps.analysis.engine import QualityRules, load_responses
from apps.analysis.engine.quality import QUALITY_COLUMNS, RULES, rater_quality

from .builders import attention, catch, fc_row, full_frame, pairwise_row, probe


def _quality(rows, rules: QualityRules | None = None, **kwargs):
    table = rater_quality(load_responses(full_frame(rows)), rules or QualityRules(), **kwargs)
    return table.set_index("rater_id")


def _pairwise_tasks(rater: str, n: int, *, left_always: bool = False) -> list[dict]:
    """``n`` pairwise answers; sides alternate unless ``left_always`` (A shown left, A more)."""
    rows = []
    for t in range(n):
        side = "a" if left_always or t % 2 else "b"
        value = 1 + t % 2 if left_always else [1, -1, 2, 0][t % 4]
        rows.append(pairwise_row("pw", t, rater, "cpr1", "cpr2", value, shown_left=side,
                                 image=f"i{t}"))  # fmt: skip
    return rows


def test_attention_figures_and_rule():
    real = _pairwise_tasks("r1", 4)
    rows = [*real, attention(real[0], 0, 0), attention(real[1], 2, 0), attention(real[2], "+1", 1)]

    q = _quality(rows).loc["r1"]

    assert (q["n_attention"], q["attention_failed"]) == (3, 1)
    assert q["attention_accuracy"] == pytest.approx(2 / 3)
    assert q["reasons"] == "attention" and q["excluded"]
    lenient = _quality(rows, QualityRules(max_attention_failures=2)).loc["r1"]
    assert not lenient["excluded"]


def test_forced_choice_attention_compares_the_answer_text():
    real = [fc_row("fc", t, "r1", "cpr1", "fish", "fish", image=f"i{t}") for t in range(3)]
    rows = [*real, attention(real[0], "dog", "dog"), attention(real[1], "fish", "dog")]
    q = _quality(rows).loc["r1"]
    assert (q["n_attention"], q["attention_failed"]) == (2, 1)


def test_catch_figures_pairwise_any_answer_for_a_is_right():
    real = _pairwise_tasks("r1", 4)
    catches = [
        catch(pairwise_row("pw", f"c{i}", "r1", "cpr2", "cpr2", v, image=f"c{i}"), "a")
        for i, v in enumerate([2, 1, 0, -1])
    ]
    q = _quality([*real, *catches]).loc["r1"]
    assert (q["n_catch"], q["catch_accuracy"]) == (4, 0.5)
    assert q["reasons"] == ""  # 0.5 is not below 0.5
    strict = _quality([*real, *catches], QualityRules(min_catch_accuracy=0.75)).loc["r1"]
    assert strict["reasons"] == "catch"


def test_forced_choice_catch_is_right_when_it_names_the_expected_class():
    real = [fc_row("fc", t, "r1", "cpr1", "fish", "fish", image=f"i{t}") for t in range(3)]
    rows = [*real, catch(fc_row("fc", "c", "r1", "cpr1", "dog", "fish", image="c"), "dog")]
    q = _quality(rows).loc["r1"]
    assert (q["n_catch"], q["catch_accuracy"], q["reasons"]) == (1, 0.0, "catch")


def test_pairwise_consistency_is_the_same_sign_and_needs_enough_probes():
    real = _pairwise_tasks("r1", 4)  # values 1, -1, 2, 0
    same_sign = [probe(real[0], 2), probe(real[1], -2), probe(real[3], 0)]  # all consistent
    q = _quality([*real, *same_sign]).loc["r1"]
    assert (q["n_probes"], q["consistency"], q["reasons"]) == (3, 1.0, "")

    flipped = [probe(real[0], -1), probe(real[2], 0)]  # sign flipped; strong -> equal
    q = _quality([*real, *flipped]).loc["r1"]
    assert (q["n_probes"], q["consistency"], q["reasons"]) == (2, 0.0, "consistency")

    one = _quality([*real, flipped[0]]).loc["r1"]  # fewer than min_probes (2): no rule
    assert (one["n_probes"], one["consistency"], one["reasons"]) == (1, 0.0, "")


def test_forced_choice_consistency_is_the_same_answer():
    real = [fc_row("fc", t, "r1", "cpr1", "fish", a, image=f"i{t}")
            for t, a in enumerate(["fish", "idk", "fish"])]  # fmt: skip
    rows = [*real, probe(real[0], "fish"), probe(real[1], "fish"), probe(real[2], "idk")]
    q = _quality(rows).loc["r1"]
    assert q["consistency"] == pytest.approx(1 / 3) and q["reasons"] == "consistency"


def test_side_bias_needs_ten_non_equal_answers_for_one_side():
    q = _quality(_pairwise_tasks("r1", 10, left_always=True)).loc["r1"]
    assert (q["share_left_more"], q["reasons"]) == (1.0, "side_bias")
    nine = _quality(_pairwise_tasks("r1", 9, left_always=True)).loc["r1"]
    assert nine["reasons"] == ""
    # 9 of 10 on the right is as biased as 9 of 10 on the left
    rows = _pairwise_tasks("r1", 10, left_always=True)
    rows = [{**r, "shown_left": "b", "answer_raw": "b:1"} for r in rows[:9]] + rows[9:]
    right = _quality(rows).loc["r1"]
    assert (right["share_left_more"], right["reasons"]) == (pytest.approx(0.1), "side_bias")
    off = _quality(rows, QualityRules(max_side_share=1.01)).loc["r1"]
    assert off["reasons"] == ""


def test_speed_and_side_come_from_real_tasks_only():
    real = _pairwise_tasks("r1", 4)
    quick = [{**probe(real[0], 1), "response_ms": "10"}, {**attention(real[1], 0, 0),
             "response_ms": "10", "shown_left": "a"}]  # fmt: skip
    alone = _quality(real).loc["r1"]
    q = _quality([*real, *quick]).loc["r1"]
    assert q["median_ms"] == alone["median_ms"] == 3000
    assert q["share_left_more"] == alone["share_left_more"]
    assert q["n_answers"] == 4 and q["distinct_buttons"] == alone["distinct_buttons"]


def test_a_rater_with_only_check_rows_is_listed_with_no_answers():
    real = _pairwise_tasks("r1", 2)
    rows = [*real, catch(pairwise_row("pw", "c", "r2", "cpr2", "cpr2", 1, image="c"), "a")]
    q = _quality(rows)
    assert q.loc["r2", "n_answers"] == 0 and q.loc["r2", "catch_accuracy"] == 1.0
    assert math.isnan(q.loc["r2", "median_ms"])


def test_by_experiment_splits_a_raters_figures():
    pw = _pairwise_tasks("r1", 3)
    fc = [fc_row("fc", t, "r1", "cpr1", "fish", "fish", image=f"j{t}") for t in range(2)]
    rows = [*pw, *fc, attention(pw[0], 2, 0)]
    table = _quality(rows, by_experiment=True).reset_index()
    got = {
        r["experiment"]: (r["n_answers"], r["attention_failed"]) for r in table.to_dict("records")
    }
    assert got == {"pw": (3, 1), "fc": (2, 0)}
    assert list(table.columns) == ["rater_id", "experiment", *QUALITY_COLUMNS[1:]]


def test_describe_names_every_rule():
    lines = QualityRules().describe()
    assert [line.split(":")[0] for line in lines] == list(RULES)
