"""Late answers: the flags load (and default to false), over-quota answers are left out
of the tables unless asked for."""

from __future__ import annotations

import pandas as pd
import pytest

from apps.analysis.engine import AnalysisInputError, AnalysisOptions, load_responses, run_analysis

from .builders import fc_row

FAST = AnalysisOptions(n_boot=0, figures=False)


def _rows(over_quota_answer: str) -> pd.DataFrame:
    # task 1 has its 2 in-quota answers (both right) and one late answer kept over quota
    rows = [
        {**fc_row("e", 1, "r1", "cpr1", "fish", "fish"), "late": "false", "over_quota": "false"},
        {**fc_row("e", 1, "r2", "cpr1", "fish", "fish"), "late": "true", "over_quota": "false"},
        {**fc_row("e", 1, "r3", "cpr1", "fish", over_quota_answer), "late": "true",
         "over_quota": "true"},
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_over_quota_answers_are_left_out_by_default_and_kept_on_request(tmp_path):
    df = _rows("idk")
    default = run_analysis(df, tmp_path / "a", options=FAST)
    summary = default.tables["forced_choice_summary"].set_index("condition")
    assert default.n_answers_in == 3 and default.n_answers_used == 2
    assert summary.loc["cpr1", "n_answers"] == 2 and summary.loc["cpr1", "accuracy"] == 1.0
    assert "1 over their task's quota, left out" in (tmp_path / "a" / "README.md").read_text()

    kept = run_analysis(
        df,
        tmp_path / "b",
        options=AnalysisOptions(n_boot=0, figures=False, include_over_quota=True),
    )
    summary = kept.tables["forced_choice_summary"].set_index("condition")
    assert kept.n_answers_used == 3 and summary.loc["cpr1", "accuracy"] == pytest.approx(2 / 3)


def test_files_without_the_flags_still_load_as_on_time(tmp_path):
    df = _rows("idk").drop(columns=["late", "over_quota"])
    responses = load_responses(df)
    assert not responses.df["late"].any() and not responses.df["over_quota"].any()


def test_a_bad_flag_is_named(tmp_path):
    df = _rows("idk")
    df.loc[1, "late"] = "maybe"
    with pytest.raises(AnalysisInputError, match="late"):
        load_responses(df)
