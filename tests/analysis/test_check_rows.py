"""The check columns of the response CSV (check_kind, probe_of, expected, reopened):
loading, validation, and the rule that check rows never change a table."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from apps.analysis.engine import AnalysisInputError, AnalysisOptions, load_responses, run_analysis
from apps.studies.csv_contract import CHECK_COLUMNS

from .builders import attention, catch, fc_row, frame, full_frame, pairwise_row, probe

FAST = AnalysisOptions(n_boot=0, figures=False)
PAIRS = (("cpr1", "cpr2"), ("cpr1", "cpr4"), ("cpr2", "cpr4"))
FC_CLASSES = ("fish", "dog", "church")


def _study(seed: int = 1) -> tuple[list[dict], list[dict]]:
    """A pairwise and a forced-choice experiment, 4 answers per task, random sides."""
    rng = random.Random(seed)
    pw, fc = [], []
    for t in range(18):
        a, b = PAIRS[t % 3]
        for r in range(4):
            side = rng.choice("ab")
            value = rng.choice([-2, -1, 0, 1, 2])
            pw.append(pairwise_row("pw", t, f"p{(t + r) % 6}", a, b, value, shown_left=side,
                                   image=f"i{t}", ms=rng.randint(1500, 6000)))  # fmt: skip
    for t in range(18):
        cls = FC_CLASSES[t % 3]
        for r in range(4):
            answer = rng.choice([cls, cls, cls, "idk", FC_CLASSES[(t + 1) % 3]])
            fc.append(fc_row("fc", t, f"f{(t + r) % 6}", ["cpr1", "cpr8"][t % 2], cls, answer,
                             image=f"j{t}", ms=rng.randint(1500, 6000)))  # fmt: skip
    return pw, fc


def _passed_checks(pw: list[dict], fc: list[dict]) -> list[dict]:
    """For every rater: an attention check, a probe and a catch trial, all answered right;
    the forced-choice ones name classes no real task shows."""
    rows = []
    for rater in sorted({r["rater_id"] for r in pw}):
        first = next(r for r in pw if r["rater_id"] == rater)
        rows.append(attention(first, 0, 0))
        rows.append(probe(first, first["answer"]))
        rows.append(catch(pairwise_row("pw", f"c-{rater}", rater, "cpr2", "cpr2", 2,
                                       image=f"c-{rater}"), "a"))  # fmt: skip
    for rater in sorted({r["rater_id"] for r in fc}):
        first = next(r for r in fc if r["rater_id"] == rater)
        rows.append(attention(first, "golf ball", "golf ball"))
        rows.append(probe(first, first["answer"]))
        rows.append(catch(fc_row("fc", f"c-{rater}", rater, "cpr1", "parachute", "parachute",
                                 image=f"c-{rater}"), "parachute"))  # fmt: skip
    return rows


def _interleave(rows: list[dict], extra: list[dict], seed: int = 3) -> list[dict]:
    out = list(rows)
    rng = random.Random(seed)
    for row in extra:
        out.insert(rng.randint(0, len(out)), row)
    return out


# --- loading ---------------------------------------------------------------------------


def test_the_check_columns_load_and_check_rows_are_split_off(tmp_path):
    pw, fc = _study()
    rows = _interleave(pw + fc, _passed_checks(pw, fc))
    path = tmp_path / "r.csv"
    full_frame(rows).to_csv(path, index=False)

    r = load_responses(path)

    assert len(r.df) == len(pw) + len(fc)  # real tasks only
    assert r.checks["kind"].astype(str).value_counts().to_dict() == {
        "attention": 12,
        "probe": 12,
        "catch": 12,
    }
    probes = r.checks[r.checks["kind"] == "probe"]
    assert (probes["original_row"] > 0).all()
    # the classes come from the real tasks only: no "golf ball" (instructed), no "parachute"
    assert r.experiments["fc"].classes == tuple(sorted(FC_CLASSES))
    assert r.experiments["pw"].conditions == ("cpr1", "cpr2", "cpr4")


def test_an_older_file_without_the_check_columns_loads_as_real_tasks(tmp_path):
    pw, fc = _study()
    path = tmp_path / "old.csv"
    frame(pw + fc).to_csv(path, index=False)  # the required columns only

    r = load_responses(path)

    assert len(r.df) == len(pw) + len(fc) and r.checks.empty
    assert not r.df["reopened"].any() and not r.df["over_quota"].any()
    assert set(CHECK_COLUMNS) - set(pd.read_csv(path, nrows=0).columns) == set(CHECK_COLUMNS)


def test_an_attention_check_repeats_a_task_without_being_a_second_answer(tmp_path):
    pw, _ = _study()
    rows = [*pw, attention(pw[0], 1, 0)]
    r = load_responses(full_frame(rows))
    assert len(r.checks) == 1
    # the same row as a real answer is a duplicate
    with pytest.raises(AnalysisInputError, match="answered this task twice"):
        load_responses(full_frame([*pw, {**pw[0], "answer": "1"}]))


# --- the tables ------------------------------------------------------------------------


def test_check_and_probe_rows_never_change_any_table(tmp_path):
    """Every table but rater_quality is identical with and without the check rows
    (attention checks on answered tasks, probes with sides swapped, catch trials with one
    condition on both sides or an unseen class), bootstrap CIs included."""
    pw, fc = _study()
    options = AnalysisOptions(n_boot=50, seed=5, figures=False)
    plain = tmp_path / "plain.csv"
    full_frame(pw + fc).to_csv(plain, index=False)
    checked = tmp_path / "checked.csv"
    full_frame(_interleave(pw + fc, _passed_checks(pw, fc))).to_csv(checked, index=False)

    before = run_analysis(plain, tmp_path / "a", options=options)
    after = run_analysis(checked, tmp_path / "b", options=options)

    assert after.n_answers_in == before.n_answers_in + 36
    assert after.n_answers_used == before.n_answers_used
    assert set(before.tables) == set(after.tables)
    for name, table in before.tables.items():
        if name == "rater_quality":
            continue
        pd.testing.assert_frame_equal(table, after.tables[name], obj=name)
    for path in sorted((tmp_path / "a").glob("*.csv")):
        if path.name != "rater_quality.csv":
            assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name
    quality = after.tables["rater_quality"].set_index("rater_id")
    assert (quality[["n_attention", "n_catch", "n_probes"]] == 1).all().all()
    assert not quality["excluded"].any()
    before_q = before.tables["rater_quality"].set_index("rater_id")
    for col in ("n_answers", "median_ms", "share_left_more", "distinct_buttons"):
        pd.testing.assert_series_equal(before_q[col], quality[col])
    readme = (tmp_path / "b" / "README.md").read_text()
    assert "36 check items: 12 attention checks, 12 catch trials, 12 consistency probes" in readme


def test_failed_checks_exclude_the_rater_and_only_that_changes_the_tables(tmp_path):
    pw, fc = _study()
    checks = _passed_checks(pw, fc)
    failing = next(i for i, r in enumerate(checks) if r["rater_id"] == "p0")
    checks[failing] = attention(checks[failing], 2, 0)  # answered 2 where told 0

    res = run_analysis(full_frame(_interleave(pw + fc, checks)), tmp_path, options=FAST)
    without = run_analysis(
        full_frame([r for r in pw + fc if r["rater_id"] != "p0"]), tmp_path / "w", options=FAST
    )

    assert res.tables["excluded_raters"].to_dict("records") == [
        {"rater_id": "p0", "rater_source": "mturk", "n_answers": 12, "reasons": "attention"}
    ]
    pd.testing.assert_frame_equal(res.tables["pairwise_means"], without.tables["pairwise_means"])


def test_reopened_answers_are_left_out_of_the_tables_but_count_for_quality(tmp_path):
    rows = [
        fc_row("e", 1, "r1", "cpr1", "fish", "fish"),
        fc_row("e", 1, "r2", "cpr1", "fish", "fish"),
        {**fc_row("e", 1, "r3", "cpr1", "fish", "idk"), "reopened": "true"},
    ]

    res = run_analysis(full_frame(rows), tmp_path, options=FAST)

    summary = res.tables["forced_choice_summary"].iloc[0]
    assert (summary["n_answers"], summary["accuracy"]) == (2, 1.0)
    assert res.n_answers_in == 3 and res.n_answers_used == 2
    q = res.tables["rater_quality"].set_index("rater_id")
    assert (q.loc["r3", "n_answers"], q.loc["r3", "n_reopened"]) == (1, 1)
    assert "Reopened answers" in (tmp_path / "README.md").read_text()


def test_an_older_is_catch_file_still_scores_catch_trials(tmp_path):
    rows = [pairwise_row("e", t, "r1", "cpr1", "cpr2", 1, shown_left="ab"[t % 2]) for t in range(4)]
    rows += [pairwise_row("e", "c1", "r1", "cpr1", "cpr8", -2, image="c")]  # wrong way round
    df = frame(rows)
    df["is_catch"] = ["0"] * 4 + ["1"]
    df["catch_expected"] = ["", "", "", "", "2"]

    res = run_analysis(df, tmp_path, options=FAST)

    q = res.tables["rater_quality"].iloc[0]
    assert (q["n_catch"], q["catch_accuracy"], q["reasons"]) == (1, 0.0, "catch")
    assert q["n_answers"] == 4  # the catch trial is no real answer


# --- validation --------------------------------------------------------------------------


def _checked_rows() -> list[dict]:
    pw = [
        pairwise_row("pw", 1, "r1", "cpr1", "cpr2", 1),
        pairwise_row("pw", 2, "r1", "cpr1", "cpr4", -1, shown_left="b"),
    ]
    fc = [fc_row("fc", 1, "r1", "cpr1", "fish", "fish")]
    return [
        *pw,
        *fc,
        attention(pw[0], 0, 0),  # row 4
        probe(pw[1], -2),  # row 5
        catch(pairwise_row("pw", "c", "r1", "cpr2", "cpr2", 2, image="c"), "a"),  # row 6
        attention(fc[0], "dog", "dog"),  # row 7
        catch(fc_row("fc", "c", "r1", "cpr1", "dog", "dog", image="c"), "dog"),  # row 8
    ]


def test_the_checked_rows_are_valid():
    r = load_responses(full_frame(_checked_rows()))
    assert len(r.df) == 3 and len(r.checks) == 5


@pytest.mark.parametrize(
    ("row", "column", "value", "needle"),
    [
        (4, "check_kind", "instructed", "unknown check_kind"),
        (1, "check_kind", "Catch", "unknown check_kind"),
        (5, "probe_of", "9", "not the row's own task_id"),
        (4, "expected", "", "expected is empty on an attention check"),
        (6, "expected", "", "expected is empty on a catch trial"),
        (6, "expected", "b", "must be 'a'"),
        (4, "expected", "3", "not an answer of this scale"),
        (4, "expected", "middle", "not an answer of this scale"),
        (4, "probe_of", "1", "cannot also be a probe"),
        (3, "reopened", "perhaps", "not a boolean"),
    ],
)
def test_a_bad_check_cell_is_named(row, column, value, needle):
    rows = _checked_rows()
    rows[row - 1][column] = value
    with pytest.raises(AnalysisInputError) as info:
        load_responses(full_frame(rows))
    assert (info.value.row, info.value.column) == (row, column), str(info.value)
    assert needle in str(info.value)


def test_a_probe_of_an_answer_the_rater_never_gave_is_named():
    rows = _checked_rows()
    rows[4] = {**rows[4], "rater_id": "r2"}  # r2 never answered task 2
    with pytest.raises(AnalysisInputError, match="points to no answer of this rater") as info:
        load_responses(full_frame(rows))
    assert (info.value.row, info.value.column) == (5, "probe_of")


def test_the_study_classes_bound_a_checks_expected_answer():
    rows = _checked_rows()
    rows[6] = attention(rows[2], "dog", "golf ball")
    load_responses(full_frame(rows))  # any class when the classes are not given
    with pytest.raises(AnalysisInputError, match="not one of the study's classes") as info:
        load_responses(full_frame(rows), classes=("fish", "dog"))
    assert (info.value.row, info.value.column) == (7, "expected")


def test_is_catch_on_an_attention_check_is_named():
    df = full_frame(_checked_rows())
    df["is_catch"] = ["0", "0", "0", "1", "0", "0", "0", "0"]
    with pytest.raises(AnalysisInputError) as info:
        load_responses(df)
    assert (info.value.row, info.value.column) == (4, "is_catch")
