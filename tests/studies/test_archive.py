"""study_export / study_import: a study's archive recreates it in an empty instance."""

from __future__ import annotations

import hashlib
import json
import zipfile

import pandas as pd
import pytest
from django.contrib.auth import get_user_model
from django.core.files.storage import storages
from django.core.management import CommandError, call_command

from apps.analysis.engine import AnalysisOptions
from apps.analysis.models import AnalysisRun
from apps.analysis.services import study_analyze
from apps.core.backups import storage_walk
from apps.pipeline.models import ModelFamily, SourceImage, Stimulus
from apps.recruitment.models import Publication
from apps.studies.models import CheckItem, PracticeAnswer, Rater, Response, Study
from tests.backup.data import (
    RESULT_FILES,
    all_row_counts,
    answered_study,
    local_storages,
    response_csv,
    storage_checksums,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _tables(study: Study, out_dir) -> dict[str, pd.DataFrame]:
    options = AnalysisOptions(n_boot=0, figures=False)
    return study_analyze(
        study=Study.objects.get(pk=study.pk), out_dir=out_dir, options=options
    ).tables


def _stimulus_files() -> dict[str, str]:
    names = list(Stimulus.objects.values_list("file", flat=True))
    names += list(SourceImage.objects.values_list("file", flat=True))
    sums = {}
    for name in names:
        with storages["default"].open(name, "rb") as fh:
            sums[name] = hashlib.sha256(fh.read()).hexdigest()
    return sums


def _wipe_everything() -> None:
    call_command("flush", interactive=False)
    for alias in ("default", "pipeline", "results"):
        for name in list(storage_walk(storages[alias])):
            storages[alias].delete(name)


def test_export_then_import_into_an_empty_instance_gives_the_same_study(settings, tmp_path, capsys):
    local_storages(settings, tmp_path / "files")
    study = answered_study()
    csv_before = response_csv(study)
    files_before = _stimulus_files()
    tables_before = _tables(study, tmp_path / "before")
    counts_before = all_row_counts()
    assert counts_before["studies.checkitem"] > 0 and counts_before["studies.response"] > 10

    archive = tmp_path / "study.zip"
    call_command("study_export", study.slug, "--out", str(archive))
    with zipfile.ZipFile(archive) as zf:
        meta = json.loads(zf.read("archive.json"))
        assert zf.read("export/responses.csv").decode() == csv_before
        assert f"files/results/{study.slug}/k12-1/README.md" in zf.namelist()
        publication_rows = json.loads(
            zf.read(
                next(e["file"] for e in meta["data"] if e["model"] == "recruitment.publication")
            )
        )
    assert publication_rows[0]["fields"]["options"] == {"note": "ok"}  # the token stayed home
    assert meta["format_version"] == 1 and meta["study"] == study.slug

    _wipe_everything()
    assert Study.objects.count() == 0 and not _files_left()

    call_command("study_import", str(archive))
    assert "byte-identical" in capsys.readouterr().out

    imported = Study.objects.get(slug=study.slug)
    assert response_csv(imported) == csv_before
    assert _stimulus_files() == files_before
    tables_after = _tables(imported, tmp_path / "after")
    assert tables_after.keys() == tables_before.keys()
    for name, table in tables_before.items():
        pd.testing.assert_frame_equal(tables_after[name], table, check_exact=True)
    for model in ("studies.checkitem", "studies.practiceanswer", "studies.slot", "studies.task",
                  "studies.assignment", "studies.participation", "studies.rater",
                  "recruitment.submission", "pipeline.stimulus", "analysis.analysisrun"):  # fmt: skip
        assert all_row_counts()[model] == counts_before[model], model
    assert PracticeAnswer.objects.get().response_ms == 1234
    # Sequences were reset past the imported ids (PostgreSQL): a new row gets a fresh id.
    assert Rater.objects.create(source=Rater.Source.LINK, external_id="after-import").pk > max(
        Rater.objects.exclude(external_id="after-import").values_list("pk", flat=True)
    )
    assert CheckItem.objects.filter(submitted_at__isnull=False).exists()
    assert Publication.objects.get().options == {"note": "ok"}
    owner = imported.created_by
    assert owner.username == "owner-arch" and not owner.is_active
    assert not owner.has_usable_password()
    assert [u.username for u in imported.collaborators.all()] == ["helper-arch"]
    run = AnalysisRun.objects.get()
    for name, content in RESULT_FILES.items():
        with storages["results"].open(f"{study.slug}/{run.key}/{name}", "rb") as fh:
            assert fh.read() == content


def _files_left() -> bool:
    return any(files for files in storage_checksums().values())


def test_import_refuses_an_instance_that_has_the_study_or_its_family(settings, tmp_path):
    local_storages(settings, tmp_path / "files")
    study = answered_study()
    archive = tmp_path / "study.zip"
    call_command("study_export", study.slug, "--out", str(archive))
    answers = Response.objects.count()
    with pytest.raises(CommandError, match="a study 'arch' already exists here"):
        call_command("study_import", str(archive))
    Study.objects.filter(pk=study.pk).update(slug="renamed")
    with pytest.raises(CommandError, match="a model family 'fam-arch' already exists here"):
        call_command("study_import", str(archive))
    assert Response.objects.count() == answers


def test_a_failed_import_leaves_no_rows_and_no_files(settings, tmp_path):
    """Ids already in use are refused mid-way: the transaction and the stored files roll back."""
    local_storages(settings, tmp_path / "files")
    study = answered_study()
    archive = tmp_path / "study.zip"
    call_command("study_export", study.slug, "--out", str(archive))
    _wipe_everything()
    # The owner's name taken here is fine (matched by username); a family holding the
    # archived family's id is not: its rows load first and collide.
    get_user_model().objects.create_user("owner-arch")
    with zipfile.ZipFile(archive) as zf:
        meta = json.loads(zf.read("archive.json"))
        family_pk = json.loads(zf.read(meta["data"][0]["file"]))[0]["pk"]
    ModelFamily.objects.create(pk=family_pk, name="Other", slug="other")
    files_before = storage_checksums()
    with pytest.raises(
        CommandError, match="pipeline.modelfamily already has rows with the archive's ids"
    ):
        call_command("study_import", str(archive))
    assert Study.objects.count() == 0
    assert storage_checksums() == files_before


def test_export_and_import_name_bad_input(tmp_path):
    with pytest.raises(CommandError, match="No study 'nope'"):
        call_command("study_export", "nope", "--out", str(tmp_path / "x.zip"))
    not_zip = tmp_path / "x.zip"
    not_zip.write_text("hello")
    with pytest.raises(CommandError, match="not a study archive \\(not a zip file\\)"):
        call_command("study_import", str(not_zip))
    with zipfile.ZipFile(tmp_path / "y.zip", "w") as zf:
        zf.writestr("other.txt", "x")
    with pytest.raises(CommandError, match="no archive.json"):
        call_command("study_import", str(tmp_path / "y.zip"))
