"""``manage.py restore DIR [--force]`` (``make restore BACKUP_DIR=... [FORCE=1]``).

See :mod:`apps.core.backups`.
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.core.backups import BackupError, backup_restore


class Command(BaseCommand):
    help = (
        "Restore a folder written by `manage.py backup`: checks every file against its "
        "manifest.json, refuses a database that already holds app rows unless --force, "
        "restores the database (pg_restore --clean --if-exists --no-owner; SQLite: the backup "
        "API), uploads the storage files back and verifies their checksums. Stop the web and worker "
        "processes first."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("backup_dir", help="the folder `manage.py backup` wrote")
        parser.add_argument(
            "--force", action="store_true", help="overwrite a database that holds app rows"
        )

    def handle(self, *args, **options) -> None:
        try:
            backup_restore(
                backup_dir=Path(options["backup_dir"]),
                force=options["force"],
                log=self.stdout.write,
            )
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
