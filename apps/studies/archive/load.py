"""Load a study archive (see :mod:`apps.studies.archive`) into this instance.

All rows are written in one transaction; the files are put into the storages
inside it, and removed again if anything fails, so a refused or broken import
leaves nothing behind. Rows keep their primary keys (the response CSV shows
task and image ids): an instance already using one of those ids is refused.
"""

from __future__ import annotations

import json
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.apps import apps as django_apps
from django.contrib.auth import get_user_model
from django.core import serializers
from django.core.files.storage import storages
from django.core.management.color import no_style
from django.core.serializers.base import DeserializationError
from django.db import IntegrityError, connection, transaction

from apps.core.backups import (
    STORAGE_ALIASES,
    copy_stream,
    safe_name,
    storage_put,
    stored_sha256,
)
from apps.core.backups import BackupError as _BackupError
from apps.pipeline.models import ModelFamily
from apps.studies.archive.contents import (
    FORMAT,
    FORMAT_VERSION,
    ArchiveError,
    HashingWriter,
)
from apps.studies.exports import write_responses_csv
from apps.studies.models import Study

__all__ = ["ImportReport", "study_import"]


@dataclass
class ImportReport:
    study: Study
    rows: dict[str, int]
    files: dict[str, int]
    users_created: list[str]
    csv_matches: bool
    seconds: float


def _read_meta(zf: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(zf.read("archive.json"))
    except KeyError as exc:
        raise ArchiveError(f"{path} is not a study archive: it has no archive.json") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArchiveError(f"{path}: archive.json is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ArchiveError(f"{path} is not a study archive (archive.json is not {FORMAT})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ArchiveError(
            f"{path} is archive format version {meta.get('format_version')!r}; "
            f"this version reads {FORMAT_VERSION}"
        )
    return meta


def _users(meta: dict[str, Any]) -> list[str]:
    """Match the study's owner and collaborators by username; create missing ones inactive."""
    User = get_user_model()
    created = []
    for entry in meta.get("users", []):
        username = entry["username"]
        if User._default_manager.filter(**{User.USERNAME_FIELD: username}).exists():
            continue
        user = User(
            **{User.USERNAME_FIELD: username},
            email=entry.get("email", ""),
            first_name=entry.get("first_name", ""),
            last_name=entry.get("last_name", ""),
            is_active=False,
        )
        user.set_unusable_password()
        user.save()
        created.append(username)
    return created


def _load_rows(zf: zipfile.ZipFile, entry: dict[str, Any]) -> tuple[type, int]:
    label, name = entry["model"], entry["file"]
    try:
        model = django_apps.get_model(label)
    except (LookupError, ValueError) as exc:
        raise ArchiveError(f"the archive holds rows of an unknown model {label!r}") from exc
    try:
        records = json.loads(zf.read(name))
    except KeyError as exc:
        raise ArchiveError(f"the archive lacks {name} (archive.json lists it)") from exc
    pks = [record["pk"] for record in records]
    taken = list(model._default_manager.filter(pk__in=pks).values_list("pk", flat=True)[:5])
    if taken:
        raise ArchiveError(
            f"cannot import: {label} already has rows with the archive's ids "
            f"({', '.join(map(str, taken))}); import into an instance without them "
            f"(a new, empty database)"
        )
    try:
        objects = list(serializers.deserialize("python", records))
    except DeserializationError as exc:
        raise ArchiveError(f"{name}: {exc}") from exc
    timestamped = any(
        getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
        for field in model._meta.concrete_fields
    )
    try:
        with transaction.atomic():
            if timestamped or any(obj.m2m_data for obj in objects):
                for obj in objects:  # a raw save keeps created_at/updated_at as archived
                    obj.save()
            else:
                model._default_manager.bulk_create([obj.object for obj in objects], batch_size=1000)
    except IntegrityError as exc:
        raise ArchiveError(f"the archive's {label} rows clash with rows here: {exc}") from exc
    return model, len(objects)


def _put_files(
    zf: zipfile.ZipFile, meta: dict[str, Any], put: list[tuple[str, str]]
) -> dict[str, int]:
    """Store every archived file under its own name; ``put`` collects what was written."""
    counts = {}
    for alias, files in meta.get("files", {}).items():
        if alias not in STORAGE_ALIASES:
            raise ArchiveError(f"the archive names an unknown storage {alias!r}")
        storage = storages[alias]
        for name, info in files.items():
            try:
                safe_name(name, where=f"archive storage {alias}")
            except _BackupError as exc:
                raise ArchiveError(str(exc)) from exc
            member = f"files/{alias}/{name}"
            try:
                with zf.open(member) as fh:
                    size, sha = copy_stream(fh)
            except KeyError as exc:
                raise ArchiveError(f"the archive lacks {member} (archive.json lists it)") from exc
            if sha != info["sha256"]:
                raise ArchiveError(f"checksum mismatch in the archive: {member}")
            if storage.exists(name):
                if stored_sha256(storage, name)[1] == sha:
                    continue  # the same file is already here
                raise ArchiveError(
                    f"storage {alias} already has a different file named {name!r}; not replacing it"
                )
            with zf.open(member) as fh:
                storage_put(storage, name, fh)
            put.append((alias, name))
            if stored_sha256(storage, name)[1] != sha:
                raise ArchiveError(f"checksum mismatch after storing {alias} file {name}")
        counts[alias] = len(files)
    return counts


def study_import(*, path: Path, log: Callable[[str], None] = lambda line: None) -> ImportReport:
    """Recreate the archived study, its model family, answers and files here."""
    t0 = time.perf_counter()
    if not path.is_file():
        raise ArchiveError(f"{path} is not a file")
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise ArchiveError(f"{path} is not a study archive (not a zip file)") from exc
    with zf:
        meta = _read_meta(zf, path)
        if Study.objects.filter(slug=meta["study"]).exists():
            raise ArchiveError(
                f"a study '{meta['study']}' already exists here: study_import only recreates a "
                f"study in an instance without it (delete it first, or import elsewhere)"
            )
        if ModelFamily.objects.filter(slug=meta["family"]).exists():
            raise ArchiveError(
                f"a model family '{meta['family']}' already exists here: the archive brings its "
                f"own copy of that family, so import into an instance without it"
            )
        put: list[tuple[str, str]] = []
        rows: dict[str, int] = {}
        try:
            with transaction.atomic():
                created = _users(meta)
                models = []
                for entry in meta["data"]:
                    model, count = _load_rows(zf, entry)
                    rows[entry["model"]] = rows.get(entry["model"], 0) + count
                    if model not in models:
                        models.append(model)
                study = Study.objects.select_related("family").get(slug=meta["study"])
                others = Study.objects.filter(slug__in=meta.get("exclude_raters_of", []))
                study.exclude_raters_of.set(others)
                with connection.cursor() as cursor:
                    for sql in connection.ops.sequence_reset_sql(no_style(), models):
                        cursor.execute(sql)
                files = _put_files(zf, meta, put)
        except BaseException:
            for alias, name in put:
                storages[alias].delete(name)
            raise
    sink = HashingWriter()
    answers = write_responses_csv(study=study, out=sink)
    matches = sink.sha256 == meta.get("export", {}).get("sha256")
    seconds = time.perf_counter() - t0
    log(
        f"imported study '{study.slug}' (family '{study.family.slug}'): "
        f"{sum(rows.values())} rows ({rows.get('studies.response', 0)} responses), "
        f"{sum(files.values())} files, {len(created)} users created inactive, in {seconds:.1f} s"
    )
    if matches:
        log(f"the response CSV ({answers} answers) is byte-identical to the archive's")
    else:
        log(
            "WARNING the response CSV made here differs from the archive's "
            f"({meta.get('export', {}).get('file')}): compare the two"
        )
    return ImportReport(
        study=study,
        rows=rows,
        files=files,
        users_created=created,
        csv_matches=matches,
        seconds=seconds,
    )
