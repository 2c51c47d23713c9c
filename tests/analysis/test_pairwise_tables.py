import itertools

import krippendorff
import numpy as np
import pandas as pd
import pytest

from apps.analysis.engine import AnalysisOptions, run_analysis

from .builders import frame, pairwise_row, table4_experiment

FAST = AnalysisOptions(n_boot=0, figures=False)


def _run(df, tmp_path, options=FAST):
    return run_analysis(df, tmp_path, options=options).tables


def test_table4_means_and_table5_index_come_out_as_published(tmp_path):
    # given Experiment 1 with 2 500 answers per pair, built to the paper's Table 4
    df = table4_experiment()
    # when
    t = _run(df, tmp_path)
    # then the comparison means are exact
    means = t["pairwise_means"].set_index(["condition_a", "condition_b"])["mean"]
    assert means[("cpr1", "cpr2")] == pytest.approx(-0.0128, abs=1e-12)
    assert means[("cpr1", "cpr4")] == pytest.approx(-0.0104, abs=1e-12)
    assert means[("cpr1", "cpr8")] == pytest.approx(-0.0272, abs=1e-12)
    assert means[("cpr2", "cpr4")] == pytest.approx(0.0036, abs=1e-12)
    assert means[("cpr2", "cpr8")] == pytest.approx(0.0048, abs=1e-12)
    assert means[("cpr4", "cpr8")] == pytest.approx(-0.0232, abs=1e-12)
    assert set(t["pairwise_means"]["n_answers"]) == {2500}
    # and the explainability index rounds to Table 5
    index = t["explainability_index"].set_index("condition")["index"].round(4)
    assert index.to_dict() == {"cpr1": -0.0168, "cpr2": 0.0071, "cpr4": -0.0055, "cpr8": 0.0152}


def test_index_matches_an_independent_computation(tmp_path):
    # given unequal answer counts per pair (index is not the mean of the pair means)
    rows = []
    answers = {
        ("cpr1", "cpr2"): [2, 1, 0],
        ("cpr1", "cpr4"): [-2, -2],
        ("cpr2", "cpr4"): [1, -1, 2, 2],
    }
    for task, ((a, b), values) in enumerate(answers.items(), start=1):
        rows += [pairwise_row("e", task, f"r{i}", a, b, v) for i, v in enumerate(values)]
    df = frame(rows)
    # when
    t = _run(df, tmp_path)
    # then each condition's index is the mean over its tasks' answers, from its view
    expected = {"cpr1": (3 - 4) / 5, "cpr2": (-3 + 4) / 7, "cpr4": (4 - 4) / 6}
    got = t["explainability_index"].set_index("condition")
    for cond, value in expected.items():
        assert got.loc[cond, "index"] == pytest.approx(value)
    assert got.loc["cpr2", "n_answers"] == 7


@pytest.mark.parametrize(
    ("counts", "sd"),
    [  # the paper's Table 1: counts of cmr, smr, eq, slr, clr -> population s.d.
        ([0, 0, 0, 0, 5], 0.0),
        ([0, 0, 0, 1, 4], 0.4),
        ([0, 1, 1, 2, 1], 1.0198),
        ([0, 1, 1, 1, 2], 1.1662),
        ([1, 1, 1, 1, 1], np.sqrt(2)),
        ([1, 1, 0, 2, 1], 1.4697),
        ([2, 0, 0, 0, 3], 1.9596),
    ],
)
def test_table1_examples_give_the_published_task_sd(tmp_path, counts, sd):
    # given one task whose five answers follow a row of Table 1
    values = [v for v, c in zip([2, 1, 0, -1, -2], counts, strict=True) for _ in range(c)]
    rows = [pairwise_row("e", 1, f"r{i}", "cpr1", "cpr2", v) for i, v in enumerate(values)]
    # when
    t = _run(frame(rows), tmp_path)
    # then
    total = t["pairwise_agreement"].query("scope == 'total'").iloc[0]
    assert total["mean_task_sd"] == pytest.approx(sd, abs=5e-5)


def test_mean_task_sd_is_a_mean_over_tasks_per_scope(tmp_path):
    # given two tasks of pair 1~2 (sd 0 and 1) and one of 1~4 (sd 2)
    rows = [pairwise_row("e", 1, f"r{i}", "cpr1", "cpr2", 1) for i in range(3)]
    rows += [pairwise_row("e", 2, f"r{i}", "cpr1", "cpr2", v) for i, v in enumerate([1, -1])]
    rows += [pairwise_row("e", 3, f"r{i}", "cpr1", "cpr4", v) for i, v in enumerate([2, -2])]
    # when
    agree = _run(frame(rows), tmp_path)["pairwise_agreement"].set_index(["scope", "key"])
    # then
    assert agree.loc[("total", ""), "mean_task_sd"] == pytest.approx(1.0)
    assert agree.loc[("pair", "cpr1~cpr2"), "mean_task_sd"] == pytest.approx(0.5)
    assert agree.loc[("condition", "cpr4"), "mean_task_sd"] == pytest.approx(2.0)
    assert agree.loc[("condition", "cpr1"), "n_tasks"] == 3


def test_alpha_matches_a_hand_computation(tmp_path):
    # given three tasks on a 3-point scale: {+1,+1}, {+1,-1}, {-1,-1}
    # coincidences o(+,+)=2, o(+,-)=o(-,+)=1, o(-,-)=2; n=6, n+=n-=3
    # alpha = 1 - (n-1) * (o(+,-)+o(-,+)) / (n+ n- + n- n+) = 1 - 5*2/18 = 4/9
    vals = [[1, 1], [1, -1], [-1, -1]]
    rows = [pairwise_row("e", t, f"r{i}", "cpr1", "cpr2", v, scale=3)
            for t, vs in enumerate(vals) for i, v in enumerate(vs)]  # fmt: skip
    # when
    total = _run(frame(rows), tmp_path)["pairwise_agreement"].iloc[0]
    # then
    assert total["alpha_interval"] == pytest.approx(4 / 9)
    assert total["alpha_ordinal"] == pytest.approx(4 / 9)


def test_alpha_matches_the_krippendorff_package_on_a_raters_by_tasks_matrix(tmp_path):
    # given 40 tasks, 6 raters, 5 answers per task with missing cells
    rng = np.random.default_rng(3)
    rows, matrix = [], np.full((6, 40), np.nan)
    for t in range(40):
        pref = rng.integers(-2, 3)
        for r in rng.choice(6, 5, replace=False):
            v = int(np.clip(pref + rng.integers(-1, 2), -2, 2))
            matrix[r, t] = v
            rows.append(pairwise_row("e", t, f"r{r}", "cpr1", "cpr2", v))
    # when
    total = _run(frame(rows), tmp_path)["pairwise_agreement"].iloc[0]
    # then
    domain = [-2, -1, 0, 1, 2]
    assert total["alpha_interval"] == pytest.approx(
        krippendorff.alpha(
            reliability_data=matrix, level_of_measurement="interval", value_domain=domain
        )
    )
    assert total["alpha_ordinal"] == pytest.approx(
        krippendorff.alpha(
            reliability_data=matrix, level_of_measurement="ordinal", value_domain=domain
        )
    )


def test_shares_and_distribution_are_hand_counts(tmp_path):
    # given pair 1~32 on 3 points: 3 x a more, 1 x b more, 2 x equal
    values = [1, 1, 1, -1, 0, 0]
    rows = [pairwise_row("pre", t, f"r{i}", "cpr1", "cpr32", v, scale=3)
            for i, v in enumerate(values) for t in [i // 3]]  # fmt: skip
    # when
    t = _run(frame(rows), tmp_path)
    # then
    s = t["pairwise_shares"].iloc[0]
    assert (s["share_a_more"], s["share_b_more"], s["share_equal"]) == pytest.approx(
        (0.75, 0.25, 1 / 3)
    )
    dist = t["answer_distribution"].set_index("answer")["count"].to_dict()
    assert dist == {-1: 1, 0: 2, 1: 3}


def test_answers_shown_on_either_side_are_read_from_condition_a_view(tmp_path):
    # given the same encoded answer, once with a on the left and once on the right
    rows = [pairwise_row("e", 1, "r1", "cpr1", "cpr2", 2, shown_left="a"),
            pairwise_row("e", 1, "r2", "cpr1", "cpr2", 2, shown_left="b")]  # fmt: skip
    # when
    t = _run(frame(rows), tmp_path)
    # then the mean is +2 and the left-view answers cancel (+2 and -2)
    assert t["pairwise_means"].iloc[0]["mean"] == 2
    assert t["position_bias"].iloc[0]["mean_left_view"] == 0


def test_position_bias_is_detected_when_raters_favour_the_left(tmp_path):
    # given raters who always prefer the left map, sides alternating
    rows = []
    for t, i in itertools.product(range(60), range(3)):
        side = "a" if (t + i) % 2 else "b"
        rows.append(
            pairwise_row("e", t, f"r{i}", "cpr1", "cpr2", 1 if side == "a" else -1, shown_left=side)
        )
    # when (the side_bias rule would exclude every one of them: keep them to measure it)
    default = _run(frame(rows), tmp_path / "default")
    kept = AnalysisOptions(n_boot=0, figures=False, include_excluded=True)
    bias = _run(frame(rows), tmp_path / "kept", kept)["position_bias"].iloc[0]
    # then
    assert set(default["excluded_raters"]["reasons"]) == {"side_bias"}
    assert bias["share_left_more"] == 1.0
    assert bias["binom_p"] < 1e-6
    assert isinstance(bias, pd.Series)
