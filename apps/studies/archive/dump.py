"""Write a study's archive (see :mod:`apps.studies.archive`), streamed into a zip on disk."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core import serializers
from django.core.files.storage import storages

from apps.core.backups import _app_version, copy_stream, storage_open_stream, storage_walk
from apps.pipeline.models import ModelVariant, SourceImage, Stimulus
from apps.studies.archive.contents import (
    EXPORT_CSV,
    FORMAT,
    FORMAT_VERSION,
    ROWS_PER_FILE,
    SECRET_WORDS,
    ArchiveEncoder,
    ArchiveError,
    HashingWriter,
    latest_runs,
    row_sets,
)
from apps.studies.exports import write_responses_csv
from apps.studies.models import Study

__all__ = ["ArchiveError", "ExportReport", "study_export"]


@dataclass
class ExportReport:
    path: Path
    rows: dict[str, int]
    files: dict[str, int]
    answers: int
    bytes: int
    seconds: float


def _batches(iterable, size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in iterable:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _scrub(label: str, record: dict[str, Any]) -> dict[str, Any]:
    """Archive-specific edits of one serialized row (users by name, no secrets)."""
    fields = record["fields"]
    if label == "studies.study":
        # Other studies are not in the archive: their slugs go to archive.json instead.
        fields["exclude_raters_of"] = []
    if label == "recruitment.publication":
        options = fields.get("options") or {}
        fields["options"] = {
            key: value
            for key, value in options.items()
            if not any(word in key.lower() for word in SECRET_WORDS)
        }
    return record


def _write_json(zf: zipfile.ZipFile, name: str, data: Any) -> None:
    with zf.open(name, "w") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8")
        json.dump(data, text, cls=ArchiveEncoder)
        text.flush()
        text.detach()


def _checkpoint_name(value: str) -> str | None:
    """The pipeline storage name of a variant's checkpoint (absolute paths under PIPELINE_ROOT
    are mapped to their name relative to it, the local pipeline storage's root)."""
    if not value:
        return None
    path = Path(value)
    if path.is_absolute():
        try:
            return path.relative_to(Path(settings.PIPELINE_ROOT)).as_posix()
        except ValueError:
            return None
    return value


def _files_of(study: Study, *, with_checkpoints: bool) -> dict[str, list[str]]:
    family = study.family_id
    media: set[str] = set()
    for file, mask in SourceImage.objects.filter(family=family).values_list("file", "mask_file"):
        media.update(name for name in (file, mask) if name)
    media.update(
        Stimulus.objects.filter(image__family=family)
        .exclude(file="")
        .values_list("file", flat=True)
    )
    pipeline: list[str] = []
    if with_checkpoints:
        for value in ModelVariant.objects.filter(family=family).values_list(
            "checkpoint", flat=True
        ):
            name = _checkpoint_name(value)
            if name is None or not storages["pipeline"].exists(name):
                raise ArchiveError(f"checkpoint {value!r} is not in the pipeline storage")
            pipeline.append(name)
    results: list[str] = []
    for run in latest_runs(study):
        results.extend(storage_walk(storages["results"], f"{study.slug}/{run.key}"))
    return {"default": sorted(media), "pipeline": sorted(pipeline), "results": results}


def study_export(
    *,
    study: Study,
    out: Path,
    with_checkpoints: bool = False,
    log: Callable[[str], None] = lambda line: None,
) -> ExportReport:
    """Write ``study``'s archive to ``out`` (through ``out.partial``, renamed when complete)."""
    t0 = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    users = []
    if study.created_by is not None:
        users.append((study.created_by, "owner"))
    users += [(user, "collaborator") for user in study.collaborators.order_by("username")]
    meta: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_at": datetime.now(UTC).isoformat(),
        "app": _app_version(),
        "study": study.slug,
        "family": study.family.slug,
        "users": [
            {
                "username": user.get_username(),
                "email": user.email,
                "first_name": user.first_name,
                "last_name": user.last_name,
                "role": role,
            }
            for user, role in users
        ],
        "exclude_raters_of": list(study.exclude_raters_of.values_list("slug", flat=True)),
        "data": [],
        "files": {},
    }
    rows: dict[str, int] = {}
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for index, (model, queryset) in enumerate(row_sets(study)):
                label = model._meta.label_lower
                rows[label] = 0
                objects = queryset().order_by("pk").iterator(chunk_size=ROWS_PER_FILE)
                for part, batch in enumerate(_batches(objects, ROWS_PER_FILE)):
                    records = serializers.serialize("python", batch, use_natural_foreign_keys=True)
                    records = [_scrub(label, record) for record in records]
                    name = f"data/{index:02d}-{label}-{part:05d}.json"
                    _write_json(zf, name, records)
                    meta["data"].append({"model": label, "file": name, "rows": len(records)})
                    rows[label] += len(records)
            file_counts: dict[str, int] = {}
            for alias, names in _files_of(study, with_checkpoints=with_checkpoints).items():
                storage = storages[alias]
                listed: dict[str, dict[str, Any]] = {}
                for name in names:
                    if not storage.exists(name):
                        raise ArchiveError(f"storage {alias} has no file {name!r} (a row names it)")
                    with (
                        storage_open_stream(storage, name) as src,
                        zf.open(f"files/{alias}/{name}", "w", force_zip64=True) as dst,
                    ):
                        size, sha = copy_stream(src, dst)
                    listed[name] = {"bytes": size, "sha256": sha}
                meta["files"][alias] = listed
                file_counts[alias] = len(listed)
            with zf.open(EXPORT_CSV, "w", force_zip64=True) as raw:
                text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
                sink = HashingWriter(text)
                answers = write_responses_csv(study=study, out=sink)
                text.flush()
                text.detach()
            meta["export"] = {"file": EXPORT_CSV, "answers": answers, "sha256": sink.sha256}
            _write_json(zf, "archive.json", meta)
        partial.replace(out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    seconds = time.perf_counter() - t0
    size = out.stat().st_size
    report = ExportReport(
        path=out, rows=rows, files=file_counts, answers=answers, bytes=size, seconds=seconds
    )
    log(
        f"wrote {out}: {sum(rows.values())} rows ({rows.get('studies.response', 0)} responses), "
        f"{sum(file_counts.values())} files, {answers} answers in the CSV, "
        f"{size / 1024 / 1024:.1f} MiB in {seconds:.1f} s"
    )
    return report
