"""make backup / make restore: a round trip through a wiped instance, locally and on S3."""

from __future__ import annotations

import json

import boto3
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.core.management import CommandError, call_command
from moto import mock_aws

from apps.studies.models import Response
from tests.backup.data import (
    all_row_counts,
    answered_study,
    local_storages,
    response_csv,
    storage_checksums,
)

# Backup and restore use the database connection outside any test transaction.
pytestmark = pytest.mark.django_db(transaction=True)

BUCKET = "xai-backup-test"


def _wipe_files() -> None:
    from apps.core.backups import storage_walk

    for alias in ("default", "pipeline", "results"):
        storage = storages[alias]
        for name in list(storage_walk(storage)):
            storage.delete(name)
    assert all(not files for files in storage_checksums().values())


def _round_trip(tmp_path, capsys) -> None:
    study = answered_study()
    csv_before = response_csv(study)
    counts_before = all_row_counts()
    files_before = storage_checksums()
    assert counts_before["studies.response"] > 10 and counts_before["studies.checkitem"] > 0
    assert all(files_before[alias] for alias in ("default", "pipeline", "results"))

    backup_dir = tmp_path / "backup"
    call_command("backup", "--out", str(backup_dir))
    manifest = json.loads((backup_dir / "manifest.json").read_text())
    assert manifest["storages"]["default"]["file_count"] == len(files_before["default"])
    assert {n: m["sha256"] for n, m in manifest["storages"]["results"]["files"].items()} == (
        files_before["results"]
    )
    assert "backup written to" in capsys.readouterr().out

    call_command("flush", interactive=False)
    _wipe_files()
    assert Response.objects.count() == 0

    call_command("restore", str(backup_dir))
    out = capsys.readouterr().out
    assert "checksums verified" in out and "restored" in out

    assert all_row_counts() == counts_before
    assert response_csv(study) == csv_before
    assert storage_checksums() == files_before


def test_backup_wipe_restore_round_trip_on_local_storage(settings, tmp_path, capsys):
    local_storages(settings, tmp_path / "files")
    _round_trip(tmp_path, capsys)


@pytest.fixture
def s3_storages(settings, tmp_path, monkeypatch):
    """The three storages in one moto bucket under media/, pipeline/, results/ (as settings)."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        local_storages(settings, tmp_path / "files")  # the factories' work folders
        common = {
            "bucket_name": BUCKET,
            "region_name": "us-east-1",
            "signature_version": "s3v4",
            "file_overwrite": False,
            "default_acl": None,
        }
        s3 = "storages.backends.s3.S3Storage"
        settings.STORAGES = {
            **settings.STORAGES,
            "default": {"BACKEND": s3, "OPTIONS": {**common, "location": "media"}},
            "pipeline": {"BACKEND": s3, "OPTIONS": {**common, "location": "pipeline"}},
            "results": {"BACKEND": s3, "OPTIONS": {**common, "location": "results"}},
        }
        yield


def test_backup_wipe_restore_round_trip_on_s3(s3_storages, tmp_path, capsys):
    # The pipeline's own files live in the pipeline storage in production; put some there.
    storages["pipeline"].save("fam-arch/manifest.json", ContentFile(b'{"variants": []}'))
    storages["pipeline"].save("fam-arch/variants/cpr1.pt", ContentFile(b"\x00weights" * 1000))
    _round_trip(tmp_path, capsys)
    keys = [
        obj["Key"]
        for obj in boto3.client("s3", region_name="us-east-1").list_objects_v2(Bucket=BUCKET)[
            "Contents"
        ]
    ]
    assert {key.split("/", 1)[0] for key in keys} == {"media", "pipeline", "results"}


def test_restore_refuses_a_database_with_app_rows_unless_forced(settings, tmp_path):
    local_storages(settings, tmp_path / "files")
    study = answered_study()
    csv_before = response_csv(study)
    backup_dir = tmp_path / "backup"
    call_command("backup", "--out", str(backup_dir))
    with pytest.raises(CommandError, match=r"not empty .*studies\.response.*--force"):
        call_command("restore", str(backup_dir))
    # Changed after the backup: --force brings the backed-up state back.
    Response.objects.filter(pk=Response.objects.order_by("pk").first().pk).update(answer="x")
    assert response_csv(study) != csv_before
    call_command("restore", str(backup_dir), "--force")
    assert response_csv(study) == csv_before


def test_restore_names_a_corrupted_file_and_a_folder_that_is_not_a_backup(settings, tmp_path):
    local_storages(settings, tmp_path / "files")
    answered_study()
    backup_dir = tmp_path / "backup"
    call_command("backup", "--out", str(backup_dir))
    with pytest.raises(CommandError, match="is not a backup: it has no manifest.json"):
        call_command("restore", str(tmp_path / "files"))
    manifest = json.loads((backup_dir / "manifest.json").read_text())
    name = sorted(manifest["storages"]["default"]["files"])[0]
    (backup_dir / "storage" / "default" / name).write_bytes(b"not the png")
    call_command("flush", interactive=False)
    with pytest.raises(
        CommandError, match=f"checksum mismatch in the backup: storage default file {name}"
    ):
        call_command("restore", str(backup_dir))
    with pytest.raises(CommandError, match="exists and is not an empty folder"):
        call_command("backup", "--out", str(backup_dir))


def test_pg_tools_get_the_password_from_the_environment_and_a_missing_tool_is_named(
    monkeypatch,
):
    from apps.core import backups

    db = {"NAME": "x", "USER": "app", "HOST": "db", "PORT": "5432", "PASSWORD": "secret-pw"}
    monkeypatch.setattr(backups.shutil, "which", lambda name: f"/usr/bin/{name}")
    argv, env = backups._pg_command("pg_dump", db)
    assert env["PGPASSWORD"] == "secret-pw"
    assert "secret-pw" not in " ".join(argv) and "--no-password" in argv
    monkeypatch.setattr(backups.shutil, "which", lambda name: None)
    with pytest.raises(backups.BackupError, match="pg_dump is not installed"):
        backups._pg_command("pg_dump", db)


@pytest.mark.postgres
def test_backup_wipe_restore_round_trip_on_postgresql(settings, tmp_path, capsys):
    """pg_dump --format=custom / pg_restore --clean of the test database; password via env."""
    local_storages(settings, tmp_path / "files")
    _round_trip(tmp_path, capsys)
    assert (tmp_path / "backup" / "database.pgdump").is_file()
