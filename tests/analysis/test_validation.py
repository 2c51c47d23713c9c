import pytest

from apps.analysis.engine import AnalysisInputError, load_responses

from .builders import fc_row, frame, pairwise_row


def _good():
    return [
        pairwise_row("exp1", 1, "r1", "cpr1", "cpr2", 1),
        pairwise_row("exp1", 1, "r2", "cpr1", "cpr2", -2, shown_left="b"),
        pairwise_row("exp1", 2, "r1", "cpr2", "cpr8-gradcampp", 0),
        fc_row("exp2", 1, "r1", "cpr1", "fish", "fish"),
        fc_row("exp2", 1, "r2", "cpr1", "fish", "idk"),
        fc_row("exp2", 2, "r1", "cpr4", "dog", "dog", image="img1"),
    ]


def test_good_input_loads_and_orders_conditions_by_cpr(tmp_path):
    # given
    path = tmp_path / "ok.csv"
    frame(_good()).to_csv(path, index=False)
    # when
    r = load_responses(path)
    # then
    assert r.experiments["exp1"].conditions == ("cpr1", "cpr2", "cpr8-gradcampp")
    assert r.experiments["exp1"].scale_points == 5
    assert r.experiments["exp2"].classes == ("dog", "fish")
    assert len(r.df) == 6


@pytest.mark.parametrize(
    ("row", "column", "value", "needle"),
    [
        (2, "answer", "3", "out of range"),
        (1, "answer", "1.5", "not an integer"),
        (3, "scale_points", "3", "mixed scales"),
        (1, "scale_points", "4", "not 3, 5 or 7"),
        (4, "experiment_kind", "ranking", "unknown experiment_kind"),
        (5, "answer", "cat", "neither a class"),
        (2, "shown_left", "left", "shown_left"),
        (3, "condition_a", "cpr16", "lower CPR"),
        (1, "condition_a", "", "empty"),
        (6, "response_ms", "fast", "response_ms"),
        (2, "rater_id", "r1", "answered this task twice"),
        (4, "rater_source", "email", "rater_source"),
        (2, "condition_b", "cpr4", "one stimulus"),
    ],
)
def test_bad_input_names_row_and_column(tmp_path, row, column, value, needle):
    # given a valid table with one cell broken (row is the 1-based data row)
    rows = _good()
    rows[row - 1][column] = value
    path = tmp_path / "bad.csv"
    frame(rows).to_csv(path, index=False)
    # when / then
    with pytest.raises(AnalysisInputError) as info:
        load_responses(path)
    err = info.value
    assert (err.row, err.column) == (row, column), str(err)
    assert needle in str(err)
    assert f"row {row} (line {row + 1})" in str(err)


def test_missing_column_is_named(tmp_path):
    # given
    path = tmp_path / "bad.csv"
    frame(_good()).drop(columns=["shown_left"]).to_csv(path, index=False)
    # when / then
    with pytest.raises(AnalysisInputError, match="shown_left") as info:
        load_responses(path)
    assert info.value.column == "shown_left"


def test_unknown_condition_is_rejected_when_the_study_declares_its_conditions(tmp_path):
    # given
    path = tmp_path / "c.csv"
    frame(_good()).to_csv(path, index=False)
    # when / then
    with pytest.raises(AnalysisInputError, match="unknown condition") as info:
        load_responses(path, known_conditions=["cpr1", "cpr2", "cpr4"])
    assert (info.value.row, info.value.column) == (3, "condition_b")


def test_extra_columns_are_ignored_and_catch_flags_must_be_boolean(tmp_path):
    # given an unknown extra column and an is_catch column with a bad value
    df = frame(_good())
    df["comment"] = "anything"
    df["is_catch"] = ["0", "1", "false", "true", "", "maybe"]
    path = tmp_path / "x.csv"
    df.to_csv(path, index=False)
    # when / then
    with pytest.raises(AnalysisInputError) as info:
        load_responses(path)
    assert (info.value.row, info.value.column) == (6, "is_catch")


def test_an_answer_without_response_time_loads_and_leaves_only_the_speed_figures_out(tmp_path):
    """The rater API does not require response_ms: such answers must not make a study
    unanalysable (they count everywhere, the median time skips them)."""
    from apps.analysis.engine import quality

    rows = _good()
    rows[0]["response_ms"] = ""
    rows[2]["response_ms"] = ""
    path = tmp_path / "no_time.csv"
    frame(rows).to_csv(path, index=False)

    r = load_responses(path)
    table = quality.rater_quality(r, quality.QualityRules(min_median_ms=0))

    assert len(r.df) == 6
    assert table.set_index("rater_id").loc["r1", "n_answers"] == 4
