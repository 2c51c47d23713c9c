import krippendorff
import numpy as np
import pytest

from apps.analysis.engine import AnalysisOptions, run_analysis

from .builders import CLASSES, TABLE7, fc_row, frame, table7_experiment

FAST = AnalysisOptions(n_boot=0, figures=False)


def test_table7_rates_come_out_as_published(tmp_path):
    # given Experiment 2 with 2 500 answers per CPR, counts as in the paper's Table 7
    df = table7_experiment()
    # when
    t = run_analysis(df, tmp_path, options=FAST).tables
    # then
    s = t["forced_choice_summary"].set_index("condition")
    published = {"cpr1": (85.84, 4.36, 9.80), "cpr2": (86.40, 4.64, 8.96), "cpr4": (82.08, 5.36, 12.56),
                 "cpr8": (81.20, 5.36, 13.44), "cpr32": (81.32, 4.48, 14.20)}  # fmt: skip
    for cond, (acc, err, idk) in published.items():
        assert s.loc[cond, "n_answers"] == 2500
        assert s.loc[cond, "accuracy"] == pytest.approx(acc / 100, abs=1e-12)
        assert s.loc[cond, "error_rate"] == pytest.approx(err / 100, abs=1e-12)
        assert s.loc[cond, "indecisive_rate"] == pytest.approx(idk / 100, abs=1e-12)
    assert list(s.index) == ["cpr1", "cpr2", "cpr4", "cpr8", "cpr32"]  # ordered by CPR, not by name


def test_per_class_rates_and_confusion_are_hand_counts(tmp_path):
    # given one condition, two classes: fish 2 right + 1 idk, dog 1 right + 1 called fish
    rows = [fc_row("e", 1, "r1", "cpr1", "fish", "fish", image="a"),
            fc_row("e", 1, "r2", "cpr1", "fish", "fish", image="a"),
            fc_row("e", 1, "r3", "cpr1", "fish", "idk", image="a"),
            fc_row("e", 2, "r1", "cpr1", "dog", "dog", image="b"),
            fc_row("e", 2, "r2", "cpr1", "dog", "fish", image="b")]  # fmt: skip
    # when
    result = run_analysis(frame(rows), tmp_path, options=FAST)
    # then
    pc = result.tables["forced_choice_per_class"].set_index("class")
    assert pc.loc["fish", ["accuracy", "error_rate", "indecisive_rate"]].tolist() == pytest.approx(
        [2 / 3, 0, 1 / 3]
    )
    assert pc.loc["dog", ["accuracy", "error_rate", "indecisive_rate"]].tolist() == pytest.approx(
        [0.5, 0.5, 0]
    )
    conf = (tmp_path / "confusion_e_cpr1.csv").read_text().splitlines()
    assert conf[0] == "true_class,dog,fish,idk"
    assert conf[1:] == ["dog,1,1,0", "fish,0,2,1"]


def test_nominal_alpha_matches_the_krippendorff_package(tmp_path):
    # given 30 maps under two conditions, 5 raters of 7 answering each
    rng = np.random.default_rng(1)
    rows, matrix = [], np.full((7, 60), np.nan)
    labels = [*CLASSES[:4], "idk"]
    for t in range(60):
        true = CLASSES[t % 4]
        for r in rng.choice(7, 5, replace=False):
            ans = true if rng.random() < 0.7 else labels[rng.integers(0, 5)]
            matrix[r, t] = labels.index(ans)
            rows.append(
                fc_row("e", t, f"r{r}", "cpr1" if t < 30 else "cpr2", true, ans, image=f"i{t % 30}")
            )
    # when
    agree = run_analysis(frame(rows), tmp_path, options=FAST).tables["forced_choice_agreement"]
    # then
    total = agree.query("scope == 'total'").iloc[0]["alpha_nominal"]
    assert total == pytest.approx(
        krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")
    )
    per_cond = agree.set_index("key").loc["cpr2", "alpha_nominal"]
    assert per_cond == pytest.approx(
        krippendorff.alpha(reliability_data=matrix[:, 30:], level_of_measurement="nominal")
    )


def test_accuracy_ci_brackets_the_estimate_and_is_reproducible(tmp_path):
    # given Table 7 data and a seeded bootstrap
    df = table7_experiment()
    opts = AnalysisOptions(n_boot=300, seed=5, figures=False)
    # when run twice
    a = run_analysis(df, tmp_path / "a", options=opts).tables["forced_choice_summary"]
    b = run_analysis(df, tmp_path / "b", options=opts).tables["forced_choice_summary"]
    # then
    assert (a["accuracy_ci_low"] < a["accuracy"]).all() and (
        a["accuracy"] < a["accuracy_ci_high"]
    ).all()
    assert a["accuracy_ci_low"].tolist() == b["accuracy_ci_low"].tolist()
    # and the width is plausible for 2 500 clustered binary answers (binomial half-width ~0.014)
    width = (a["accuracy_ci_high"] - a["accuracy_ci_low"]).to_numpy()
    assert np.all((width > 0.01) & (width < 0.15))


def test_paired_tests_find_a_real_accuracy_difference_after_holm(tmp_path):
    # given 40 images, condition cpr1 always recognised, cpr8 mostly not
    rows = []
    for img in range(40):
        true = CLASSES[img % 10]
        for i in range(3):
            rows.append(
                fc_row("e", f"a{img}", f"r{i}-{img % 4}", "cpr1", true, true, image=f"i{img}")
            )
            ans = true if (img + i) % 4 == 0 else "idk"
            rows.append(
                fc_row("e", f"b{img}", f"r{i}-{img % 4}", "cpr8", true, ans, image=f"i{img}")
            )
    # when
    sig = run_analysis(frame(rows), tmp_path, options=FAST).tables["significance_tests"]
    # then
    w = sig.query("test == 'wilcoxon_image_accuracy'").iloc[0]
    assert (w["condition_a"], w["condition_b"], w["n_units"]) == ("cpr1", "cpr8", 40)
    assert w["estimate"] > 0.5
    assert w["p_holm"] < 0.001 and bool(w["reject_holm"])
    assert TABLE7  # the builder table is importable for other tests
