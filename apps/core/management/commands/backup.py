"""``manage.py backup [--out DIR]`` (``make backup BACKUP_DIR=...``): see :mod:`apps.core.backups`."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.core.backups import BackupError, backup_create, default_backup_dir


class Command(BaseCommand):
    help = (
        "Back up the database (PostgreSQL: pg_dump --format=custom, the password passed in "
        "PGPASSWORD; SQLite: the sqlite3 backup API) and every file of the default, pipeline "
        "and results storages (local or S3, streamed) into a new folder with a manifest.json "
        "(sha256 per file). Restore with `manage.py restore DIR` (make restore BACKUP_DIR=DIR)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--out",
            help="the new (or empty) folder to write; default var/backups/<UTC timestamp>",
        )

    def handle(self, *args, **options) -> None:
        out = Path(options["out"]) if options.get("out") else default_backup_dir()
        try:
            backup_create(out_dir=out, log=self.stdout.write)
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
