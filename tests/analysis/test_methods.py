import numpy as np
import pytest

from apps.analysis.engine import AnalysisOptions, QualityRules, bradley_terry, run_analysis
from apps.analysis.engine.bootstrap import task_replicates
from apps.analysis.engine.testing import holm

from .builders import fc_row, frame, pairwise_row

FAST = AnalysisOptions(n_boot=0, figures=False)


def test_holm_matches_a_hand_computation():
    # given p = 0.01, 0.04, 0.03 (m = 3): sorted 0.01*3, 0.03*2, 0.04*1 -> 0.03, 0.06, 0.06 (monotone)
    # when / then
    assert holm([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.06, 0.06])
    assert np.isnan(holm([np.nan, 0.2])[0]) and holm([np.nan, 0.2])[1] == pytest.approx(0.2)


def test_davidson_fit_recovers_known_strengths():
    # given expected counts from strengths theta = (-0.5, 0, 0.5) and tie log nu = 0
    theta, nu = np.array([-0.5, 0.0, 0.5]), 1.0
    pairs = [(0, 1), (0, 2), (1, 2)]
    counts = []
    for i, j in pairs:
        wi, wj, tie = np.exp(theta[i]), np.exp(theta[j]), nu * np.exp((theta[i] + theta[j]) / 2)
        z = wi + wj + tie
        counts.append([1e4 * wi / z, 1e4 * wj / z, 1e4 * tie / z])
    # when
    est = bradley_terry.fit(pairs, np.array(counts), 3)[0]
    # then
    assert est[:3] == pytest.approx(theta, abs=1e-6)
    assert est[3] == pytest.approx(0.0, abs=1e-6)


def test_task_bootstrap_is_exact_resampling_of_task_types():
    # given 4 tasks, two types; replicate means must be possible resample means
    num, den = np.array([5, 5, -5, -5]), np.array([5, 5, 5, 5])
    # when
    reps = task_replicates(num, den, np.random.default_rng(0), 2000)
    # then: mean of 4 draws of +-1 -> values in {-1,-0.5,0,0.5,1}, centred on 0
    assert set(np.round(reps, 6)) <= {-1.0, -0.5, 0.0, 0.5, 1.0}
    assert abs(reps.mean()) < 0.05


def test_bradley_terry_orders_conditions_by_wins(tmp_path):
    # given cpr2 beats cpr1 most of the time, with some ties: 75 vs 45 wins, 30 ties
    rows = []
    for t in range(30):
        for i, v in enumerate([-2, -1, -1 if t % 2 else 1, 0, 1]):
            rows.append(pairwise_row("e", t, f"r{i}-{t % 3}", "cpr1", "cpr2", v, image=f"i{t}"))
    # when (every answer shown with A on the left: no rule on raters here)
    opts = AnalysisOptions(n_boot=200, figures=False, include_excluded=True)
    bt = run_analysis(frame(rows), tmp_path, options=opts).tables["bradley_terry"]
    # then
    s = bt.set_index("condition")
    assert s.loc["cpr2", "score"] > 0 > s.loc["cpr1", "score"]
    # MLE for one pair: theta2 - theta1 = log(wins2 / wins1) = log(75 / 45)
    assert s.loc["cpr2", "score"] - s.loc["cpr1", "score"] == pytest.approx(
        np.log(75 / 45), abs=1e-6
    )
    assert s.loc["cpr2", "ci_low"] < s.loc["cpr2", "score"] < s.loc["cpr2", "ci_high"]


def test_quality_rules_exclude_raters_and_the_switch_keeps_them(tmp_path):
    # given r-good answers normally; r-line always clicks the same button; r-fast is too fast;
    # r-catch fails a catch trial
    rows = []
    for t in range(12):
        cls = ["fish", "dog", "church"][t % 3]
        rows.append(fc_row("e", t, "r-good", "cpr1", cls, cls, image=f"i{t}"))
        rows.append(fc_row("e", t, "r-line", "cpr1", cls, "idk", image=f"i{t}"))
        rows.append(fc_row("e", t, "r-fast", "cpr1", cls, cls, image=f"i{t}", ms=300))
        rows.append(fc_row("e", t, "r-catch", "cpr1", cls, cls, image=f"i{t}"))
    df = frame(rows)
    df["is_catch"] = "0"
    catch = frame([fc_row("e", "c1", "r-catch", "cpr1", "fish", "dog", image="catch"),
                   fc_row("e", "c1", "r-good", "cpr1", "fish", "fish", image="catch")])  # fmt: skip
    catch["is_catch"] = "1"
    df = __import__("pandas").concat([df, catch], ignore_index=True)
    # when
    default = run_analysis(df, tmp_path / "d", options=FAST)
    kept = run_analysis(
        df, tmp_path / "k", options=AnalysisOptions(n_boot=0, figures=False, include_excluded=True)
    )
    # then
    reasons = default.tables["excluded_raters"].set_index("rater_id")["reasons"].to_dict()
    assert reasons == {"r-catch": "catch", "r-fast": "too_fast", "r-line": "straight_lining"}
    assert (
        default.tables["forced_choice_summary"].iloc[0]["n_answers"] == 12
    )  # r-good only, catch row out
    assert default.tables["forced_choice_summary"].iloc[0]["accuracy"] == 1.0
    assert kept.tables["forced_choice_summary"].iloc[0]["n_answers"] == 48
    assert "3 by the quality rules, left out" in (tmp_path / "d" / "README.md").read_text()
    assert (tmp_path / "d" / "excluded_raters.csv").exists()


def test_rules_are_configurable(tmp_path):
    # given the same too-fast rater but a lower floor
    rows = [fc_row("e", t, "r1", "cpr1", "fish", "fish", image=f"i{t}", ms=300) for t in range(3)]
    # when
    res = run_analysis(frame(rows), tmp_path, options=AnalysisOptions(n_boot=0, figures=False,
                       rules=QualityRules(min_median_ms=100)))  # fmt: skip
    # then
    assert res.excluded_raters == []


def test_correlations_with_metrics_and_model_accuracy(tmp_path):
    # given accuracy falling with CPR and a metric that rises with it
    rows = []
    conds = ["cpr1", "cpr2", "cpr4", "cpr8"]
    for c, cond in enumerate(conds):
        for img in range(10):
            for r in range(4):
                ans = "fish" if r >= c else "idk"
                rows.append(
                    fc_row("e", f"{cond}-{img}", f"r{r}-{img}", cond, "fish", ans, image=f"i{img}")
                )
    metrics = __import__("pandas").DataFrame(
        {
            "condition": np.repeat(conds, 10),
            "image_id": [f"i{i}" for i in range(10)] * 4,
            "gini": np.repeat([0.1, 0.2, 0.3, 0.4], 10),
        }  # fmt: skip
    )
    acc = __import__("pandas").DataFrame(
        {"condition": conds, "test_accuracy": [0.97, 0.96, 0.95, 0.9]}
    )
    # when
    corr = run_analysis(frame(rows), tmp_path, options=AnalysisOptions(
        n_boot=0, figures=False, metrics=metrics, model_accuracy=acc,
        rules=QualityRules(straight_line_min_answers=1000))).tables["correlations"]  # fmt: skip
    # then
    c = corr.set_index(["level", "metric"])
    assert c.loc[("condition", "gini"), "spearman_rho"] == pytest.approx(-1.0)
    assert c.loc[("condition", "gini"), "n"] == 4
    assert c.loc[("image", "gini"), "n"] == 40
    assert c.loc[("condition", "test_accuracy"), "spearman_rho"] == pytest.approx(1.0)
