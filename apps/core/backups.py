"""Backups of the whole instance: the database and every storage's files, with a manifest.

A backup is a folder::

    manifest.json              what is in it, with a sha256 per file
    database.pgdump            PostgreSQL: pg_dump --format=custom
    database.sqlite3           SQLite: a copy made with sqlite3's backup API
    storage/<alias>/<name>     every file of storages["default"], ["pipeline"], ["results"]

Files are streamed (from S3 with boto3's streaming body, never read whole into
memory: django-storages' ``S3File`` buffers the whole object). The database
password reaches ``pg_dump``/``pg_restore`` only through ``PGPASSWORD``.
:func:`backup_create` and :func:`backup_restore` are the two entry points; the
``backup`` and ``restore`` management commands are thin adapters.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any

from django.apps import apps as django_apps
from django.conf import settings
from django.core.files import File
from django.core.files.storage import Storage, storages
from django.db import connection

FORMAT = "xai-crowd-backup"
FORMAT_VERSION = 1
STORAGE_ALIASES = ("default", "pipeline", "results")
CHUNK = 1024 * 1024
PG_DUMP_FILE = "database.pgdump"
SQLITE_FILE = "database.sqlite3"


class BackupError(Exception):
    """A backup or restore that cannot go on; the message names the problem."""


# --- storage files, streamed -------------------------------------------------------------


def storage_walk(storage: Storage, top: str = "") -> Iterator[str]:
    """Every file name in ``storage`` under ``top``, sorted, recursing into folders."""
    try:
        dirs, files = storage.listdir(top)
    except FileNotFoundError:  # a local storage whose folder was never created
        return
    for name in sorted(files):
        yield f"{top}/{name}" if top else name
    for sub in sorted(dirs):
        yield from storage_walk(storage, f"{top}/{sub}" if top else sub)


def storage_open_stream(storage: Storage, name: str) -> contextlib.AbstractContextManager[Any]:
    """A readable binary stream of a stored file that never holds it whole in memory.

    S3 storages: boto3's ``StreamingBody`` of the object; others: ``storage.open``.
    """
    bucket = getattr(storage, "bucket", None)
    normalize = getattr(storage, "_normalize_name", None)
    if bucket is not None and normalize is not None:
        from storages.utils import clean_name

        body = bucket.Object(normalize(clean_name(name))).get()["Body"]
        return contextlib.closing(body)
    return storage.open(name, "rb")


def copy_stream(src: IO[bytes], dst: IO[bytes] | None = None) -> tuple[int, str]:
    """Copy ``src`` to ``dst`` (or only read it) in chunks; returns (bytes, sha256 hex)."""
    digest = hashlib.sha256()
    size = 0
    while chunk := src.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
        if dst is not None:
            dst.write(chunk)
    return size, digest.hexdigest()


def stored_sha256(storage: Storage, name: str) -> tuple[int, str]:
    with storage_open_stream(storage, name) as fh:
        return copy_stream(fh)


def file_sha256(path: Path) -> tuple[int, str]:
    with path.open("rb") as fh:
        return copy_stream(fh)


def storage_put(storage: Storage, name: str, content: IO[bytes]) -> None:
    """Store ``content`` under exactly ``name`` (an existing file of that name is replaced)."""
    if storage.exists(name):
        storage.delete(name)
    saved = storage.save(name, File(content, name=PurePosixPath(name).name))
    if saved != name:
        raise BackupError(f"storage saved {name!r} as {saved!r}; the name must not change")


def safe_name(name: str, *, where: str) -> str:
    """A stored file name from a manifest or archive: relative, without '..'."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or "\\" in name:
        raise BackupError(f"{where}: {name!r} is not a valid stored file name")
    return name


# --- database ----------------------------------------------------------------------------


def app_models() -> list[Any]:
    """This project's models (apps.*) plus the user table: what a backup must bring back."""
    return [
        model
        for model in django_apps.get_models()
        if model.__module__.startswith("apps.") or model._meta.label_lower == "auth.user"
    ]


def app_row_counts() -> dict[str, int]:
    """Rows per model (``app_label.model``); a model whose table is missing counts 0."""
    tables = set(connection.introspection.table_names())
    counts = {}
    for model in app_models():
        table = model._meta.db_table
        counts[model._meta.label_lower] = model._default_manager.count() if table in tables else 0
    return counts


def _pg_command(tool: str, settings_dict: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """(argv head, env) to run ``tool`` against the Django database; the password via env."""
    path = shutil.which(tool)
    if path is None:
        raise BackupError(
            f"{tool} is not installed (not on PATH): install the PostgreSQL client tools "
            f"(Debian: apt-get install postgresql-client), the same major version as the server"
        )
    argv = [path, "--no-password"]
    if settings_dict.get("HOST"):
        argv += ["--host", str(settings_dict["HOST"])]
    if settings_dict.get("PORT"):
        argv += ["--port", str(settings_dict["PORT"])]
    if settings_dict.get("USER"):
        argv += ["--username", str(settings_dict["USER"])]
    env = {**os.environ}
    env.pop("PGPASSWORD", None)
    if settings_dict.get("PASSWORD"):
        env["PGPASSWORD"] = str(settings_dict["PASSWORD"])
    sslmode = (settings_dict.get("OPTIONS") or {}).get("sslmode")
    if sslmode:
        env["PGSSLMODE"] = str(sslmode)
    return argv, env


def _run(argv: list[str], env: dict[str, str], tool: str) -> None:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupError(f"{tool} failed (exit {done.returncode}): {done.stderr.strip()}")


def _database_dump(out_dir: Path) -> tuple[str, Path]:
    vendor = connection.vendor
    if vendor == "postgresql":
        target = out_dir / PG_DUMP_FILE
        argv, env = _pg_command("pg_dump", connection.settings_dict)
        argv += ["--format=custom", "--file", str(target), str(connection.settings_dict["NAME"])]
        _run(argv, env, "pg_dump")
        return vendor, target
    if vendor == "sqlite":
        target = out_dir / SQLITE_FILE
        connection.ensure_connection()
        dest = sqlite3.connect(target)
        try:
            connection.connection.backup(dest)
        finally:
            dest.close()
        return vendor, target
    raise BackupError(f"cannot back up a {vendor} database: only PostgreSQL and SQLite")


def _database_load(vendor: str, source: Path) -> None:
    if vendor == "postgresql":
        connection.close()  # pg_restore --clean drops tables: hold no lock on them
        argv, env = _pg_command("pg_restore", connection.settings_dict)
        argv += ["--clean", "--if-exists", "--no-owner", "--single-transaction"]
        argv += ["--dbname", str(connection.settings_dict["NAME"]), str(source)]
        _run(argv, env, "pg_restore")
        return
    # SQLite: the backup API copies the file's pages into the live database (a file copy
    # that also works while Django holds the connection, and for an in-memory database).
    connection.ensure_connection()
    src = sqlite3.connect(source)
    try:
        src.backup(connection.connection)
    finally:
        src.close()


# --- manifest ----------------------------------------------------------------------------


def _app_version() -> dict[str, str]:
    version = {"version": "", "git_commit": os.environ.get("GIT_COMMIT", "")}
    with contextlib.suppress(OSError, tomllib.TOMLDecodeError):
        project = tomllib.loads((Path(settings.BASE_DIR) / "pyproject.toml").read_text())
        version["version"] = str(project.get("project", {}).get("version", ""))
    if not version["git_commit"] and shutil.which("git"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run(
                ["git", "-C", str(settings.BASE_DIR), "rev-parse", "HEAD"],
                capture_output=True, text=True, timeout=5, check=False,
            )  # fmt: skip
            if done.returncode == 0:
                version["git_commit"] = done.stdout.strip()
    return version


def _storage_backend(storage: Storage) -> str:
    return f"{type(storage).__module__}.{type(storage).__qualname__}"


@dataclass
class Report:
    """What a backup or restore did, for the command to print."""

    lines: list[str]
    seconds: float
    manifest: dict[str, Any]


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def default_backup_dir() -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path(settings.VAR_DIR) / "backups" / stamp


# --- backup ------------------------------------------------------------------------------


def backup_create(*, out_dir: Path, log: Callable[[str], None] = lambda line: None) -> Report:
    """Write the database and every storage's files into the new folder ``out_dir``."""
    t0 = time.perf_counter()
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise BackupError(f"BACKUP_DIR {out_dir} exists and is not an empty folder: name a new one")
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = app_row_counts()
    vendor, db_file = _database_dump(out_dir)
    db_bytes, db_sha = file_sha256(db_file)
    lines = [
        f"database ({vendor}): {sum(counts.values())} rows in {len(counts)} tables -> "
        f"{db_file.name} ({_human(db_bytes)})"
    ]
    log(lines[-1])
    stored: dict[str, Any] = {}
    for alias in STORAGE_ALIASES:
        storage = storages[alias]
        files: dict[str, dict[str, Any]] = {}
        for name in storage_walk(storage):
            target = out_dir / "storage" / alias / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with storage_open_stream(storage, name) as src, target.open("wb") as dst:
                size, sha = copy_stream(src, dst)
            files[name] = {"bytes": size, "sha256": sha}
        total = sum(f["bytes"] for f in files.values())
        stored[alias] = {
            "backend": _storage_backend(storage),
            "file_count": len(files),
            "bytes": total,
            "files": files,
        }
        lines.append(f"storage {alias}: {len(files)} files, {_human(total)}")
        log(lines[-1])
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_at": datetime.now(UTC).isoformat(),
        "app": _app_version(),
        "database": {
            "engine": vendor,
            "file": db_file.name,
            "bytes": db_bytes,
            "sha256": db_sha,
            "row_counts": counts,
        },
        "storages": stored,
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    seconds = time.perf_counter() - t0
    total_files = sum(s["file_count"] for s in stored.values())
    total_bytes = db_bytes + sum(s["bytes"] for s in stored.values())
    lines.append(
        f"backup written to {out_dir}: database + {total_files} files, "
        f"{_human(total_bytes)} in {seconds:.1f} s"
    )
    log(lines[-1])
    return Report(lines=lines, seconds=seconds, manifest=manifest)


# --- restore -----------------------------------------------------------------------------


def backup_read_manifest(backup_dir: Path) -> dict[str, Any]:
    path = backup_dir / "manifest.json"
    if not backup_dir.is_dir():
        raise BackupError(f"BACKUP_DIR {backup_dir} is not a folder")
    if not path.is_file():
        raise BackupError(f"BACKUP_DIR {backup_dir} is not a backup: it has no manifest.json")
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BackupError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"BACKUP_DIR {backup_dir} is not a backup: {path} is not {FORMAT}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(
            f"{path} is format version {manifest.get('format_version')!r}; "
            f"this version reads {FORMAT_VERSION}"
        )
    return manifest


def _verify_backup_files(backup_dir: Path, manifest: dict[str, Any]) -> None:
    """Every file the manifest lists is there with its checksum, before anything is touched."""
    db = manifest["database"]
    db_file = backup_dir / safe_name(db["file"], where="manifest database")
    if not db_file.is_file():
        raise BackupError(f"the backup's database file is missing: {db_file}")
    if file_sha256(db_file)[1] != db["sha256"]:
        raise BackupError(f"checksum mismatch: {db_file} is not the file the manifest lists")
    for alias, block in manifest["storages"].items():
        for name, meta in block["files"].items():
            path = backup_dir / "storage" / alias / safe_name(name, where=f"storage {alias}")
            if not path.is_file():
                raise BackupError(f"the backup lacks storage {alias} file {name}: {path}")
            if file_sha256(path)[1] != meta["sha256"]:
                raise BackupError(f"checksum mismatch in the backup: storage {alias} file {name}")


def backup_restore(
    *, backup_dir: Path, force: bool = False, log: Callable[[str], None] = lambda line: None
) -> Report:
    """Restore the database and the storage files of ``backup_dir``, then verify them.

    Refuses (before touching anything) a database that already holds app rows
    unless ``force``; a backup whose files do not match its manifest; a backup of
    another database engine.
    """
    t0 = time.perf_counter()
    manifest = backup_read_manifest(backup_dir)
    vendor = manifest["database"]["engine"]
    if vendor != connection.vendor:
        raise BackupError(
            f"the backup holds a {vendor} database; this instance uses {connection.vendor}"
        )
    unknown = set(manifest["storages"]) - set(STORAGE_ALIASES)
    if unknown:
        raise BackupError(f"the backup names unknown storages: {', '.join(sorted(unknown))}")
    _verify_backup_files(backup_dir, manifest)
    if not force:
        busy = {
            label: n for label, n in app_row_counts().items() if n and not label.startswith("auth.")
        }
        if busy:
            listed = ", ".join(f"{label} ({n})" for label, n in sorted(busy.items()))
            raise BackupError(
                f"the database is not empty ({listed}): restore replaces it; "
                f"pass --force (make restore FORCE=1) to overwrite"
            )
    lines = []
    _database_load(vendor, backup_dir / manifest["database"]["file"])
    counts = app_row_counts()
    expected = manifest["database"].get("row_counts", {})
    lines.append(f"database ({vendor}): {sum(counts.values())} rows in {len(counts)} tables")
    log(lines[-1])
    differ = sorted(k for k in set(counts) | set(expected) if counts.get(k) != expected.get(k))
    if differ:
        lines.append(
            "WARNING row counts differ from the manifest (counted when the dump began): "
            + ", ".join(f"{k} {counts.get(k)} vs {expected.get(k)}" for k in differ)
        )
        log(lines[-1])
    for alias, block in manifest["storages"].items():
        storage = storages[alias]
        total = 0
        for name in block["files"]:
            with (backup_dir / "storage" / alias / name).open("rb") as fh:
                storage_put(storage, name, fh)
            total += block["files"][name]["bytes"]
        # Read every file back from the storage: what is stored must be what was backed up.
        for name, meta in block["files"].items():
            if stored_sha256(storage, name)[1] != meta["sha256"]:
                raise BackupError(
                    f"checksum mismatch after restore: storage {alias} file {name} "
                    f"does not match the manifest"
                )
        lines.append(
            f"storage {alias}: {len(block['files'])} files, {_human(total)} restored, "
            f"checksums verified"
        )
        log(lines[-1])
    seconds = time.perf_counter() - t0
    lines.append(f"restored {backup_dir} in {seconds:.1f} s")
    log(lines[-1])
    return Report(lines=lines, seconds=seconds, manifest=manifest)
