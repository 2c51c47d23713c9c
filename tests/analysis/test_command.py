import zipfile
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.analysis.engine import write_zip
from apps.analysis.management.commands.analyze import Command

from .builders import frame, table4_experiment, table7_experiment


def test_analyze_responses_writes_every_table_and_figure(tmp_path):
    # given a response CSV with a pairwise and a forced-choice experiment
    import pandas as pd

    csv = tmp_path / "answers.csv"
    pd.concat([table4_experiment(per_pair=250), table7_experiment()]).to_csv(csv, index=False)
    out = tmp_path / "out"
    # when
    call_command(Command(), responses=str(csv), out=str(out), bootstrap=50, stdout=StringIO())
    # then
    names = {p.name for p in out.iterdir()}
    for stem in ("pairwise_means", "explainability_index", "pairwise_agreement", "pairwise_shares",
                 "answer_distribution", "forced_choice_summary", "forced_choice_per_class",
                 "forced_choice_agreement", "bradley_terry", "excluded_raters", "rater_quality",
                 "significance_tests", "position_bias", "power", "confusion_exp2_cpr32"):  # fmt: skip
        assert f"{stem}.csv" in names
    for fig in ("figure2_cpr", "answers_exp1", "index_exp1", "confusion_exp2"):
        assert {f"{fig}.png", f"{fig}.svg"} <= names
    summary = pd.read_csv(out / "forced_choice_summary.csv")
    assert summary["accuracy"].round(4).tolist() == [0.8584, 0.8640, 0.8208, 0.8120, 0.8132]
    with (tmp_path / "out.zip").open("w+b") as fh:
        write_zip(out, fh)
        fh.seek(0)
        assert "README.md" in zipfile.ZipFile(fh).namelist()


def test_analyze_reports_bad_input_as_command_error(tmp_path):
    # given a CSV with an out-of-range answer in data row 3
    df = table4_experiment(per_pair=25)
    df.loc[2, "answer"] = "9"
    csv = tmp_path / "bad.csv"
    df.to_csv(csv, index=False)
    # when / then
    with pytest.raises(CommandError, match=r"row 3 \(line 4\), column 'answer'"):
        call_command(Command(), responses=str(csv), out=str(tmp_path / "o"))
    assert frame is not None
