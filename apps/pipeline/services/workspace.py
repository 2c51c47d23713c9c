"""A family's pipeline work folder, kept in step with the ``pipeline`` storage.

The pipeline (``workers.pipeline``) works in a local folder: step
done-markers, checkpoints, maps, the manifest. With ``STORAGE_BACKEND=local``
the ``pipeline`` storage's location IS ``PIPELINE_ROOT``, so the work folder
is the stored copy and nothing here does any work.

Otherwise (s3: one bucket shared by the web host and workers on other hosts)
the work folder is a local working copy of ``<slug>/`` in the storage, which
holds the truth:

- :func:`workspace_pull` before a job half runs: fetch every stored file that
  is missing or differs locally, so a cpu worker on another host sees the gpu
  host's markers and checkpoints, and a job redelivered to a fresh host resumes.
- :func:`workspace_push` after each finished step: upload new or changed
  files, data files first and done-markers (``steps/*.json``) last, so a
  marker in storage always means the step's files are complete there too.

What was synced is remembered in ``<workdir>/.workspace-sync.json`` (local
size and mtime, and the stored object's ETag or size/mtime stamp): a file is
only transferred when one side changed since.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage, storages

from apps.pipeline.models import ModelFamily

logger = logging.getLogger(__name__)

SYNC_INDEX = ".workspace-sync.json"
MARKER_DIR = "steps"


def family_workdir(family: ModelFamily) -> Path:
    """The family's local work folder (with s3: the working copy)."""
    return Path(settings.PIPELINE_ROOT) / family.slug


def pipeline_storage_name(family: ModelFamily, relative: str) -> str:
    """The ``pipeline`` storage name of a work-folder file (e.g. a variant's checkpoint)."""
    return f"{family.slug}/{Path(relative).as_posix()}"


def _storage() -> Storage:
    return storages["pipeline"]


def workspace_is_mirrored() -> bool:
    """False when the ``pipeline`` storage is the local folder ``PIPELINE_ROOT`` itself."""
    storage = _storage()
    if isinstance(storage, FileSystemStorage):
        return Path(storage.location).resolve() != Path(settings.PIPELINE_ROOT).resolve()
    return True


@dataclass(frozen=True)
class SyncReport:
    """Relative paths transferred by one pull or push (for logs and tests)."""

    transferred: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()


def _remote_listing(storage: Storage, prefix: str) -> dict[str, str]:
    """Every stored file under ``prefix/`` -> a stamp that changes when its content does.

    S3: one paginated listing (the ETag is the stamp). Any other storage: a
    walk with ``listdir`` (size and modification time as the stamp).
    """
    bucket = getattr(storage, "bucket", None)
    if bucket is not None and hasattr(storage, "_normalize_name"):
        root = storage._normalize_name(prefix).rstrip("/") + "/"
        return {
            obj.key[len(root) :]: obj.e_tag.strip('"')
            for obj in bucket.objects.filter(Prefix=root)
            if not obj.key.endswith("/")
        }
    out: dict[str, str] = {}

    def walk(folder: str) -> None:
        if not storage.exists(folder):
            return
        dirs, files = storage.listdir(folder)
        for name in files:
            full = f"{folder}/{name}"
            out[full[len(prefix) + 1 :]] = (
                f"{storage.size(full)}:{storage.get_modified_time(full).timestamp()}"
            )
        for name in dirs:
            walk(f"{folder}/{name}")

    walk(prefix)
    return out


def _local_stat(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _read_index(workdir: Path) -> dict[str, dict[str, Any]]:
    try:
        return json.loads((workdir / SYNC_INDEX).read_text())
    except (FileNotFoundError, ValueError):
        return {}


def _write_index(workdir: Path, index: dict[str, dict[str, Any]]) -> None:
    tmp = workdir / (SYNC_INDEX + ".tmp")
    tmp.write_text(json.dumps(index))
    os.replace(tmp, workdir / SYNC_INDEX)


def _local_files(workdir: Path) -> list[str]:
    return sorted(
        p.relative_to(workdir).as_posix()
        for p in workdir.rglob("*")
        if p.is_file() and not p.name.startswith(SYNC_INDEX) and not p.name.endswith(".tmp")
    )


def _is_marker(relative: str) -> bool:
    return relative.startswith(f"{MARKER_DIR}/")


def workspace_pull(*, family: ModelFamily) -> SyncReport:
    """Bring the local work folder up to the stored one (no-op with the local backend).

    Downloads each stored file that is missing locally, changed in storage
    since it was last synced, or changed locally without being pushed (an
    unfinished step's leftovers: the storage holds the truth). Local files the
    storage does not have are left alone (an unfinished step overwrites them).
    """
    if not workspace_is_mirrored():
        return SyncReport()
    storage = _storage()
    workdir = family_workdir(family)
    workdir.mkdir(parents=True, exist_ok=True)
    index = _read_index(workdir)
    remote = _remote_listing(storage, family.slug)
    fetched = []
    for relative, stamp in sorted(remote.items()):
        local = workdir / relative
        known = index.get(relative)
        if (
            local.is_file()
            and known is not None
            and known.get("remote") == stamp
            and known.get("local") == _local_stat(local)
        ):
            continue
        fetched.append(relative)

    def fetch(relative: str) -> None:
        local = workdir / relative
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(local.name + ".tmp")
        with (
            storage.open(pipeline_storage_name(family, relative), "rb") as src,
            tmp.open("wb") as dst,
        ):
            shutil.copyfileobj(src, dst, 1024 * 1024)
        os.replace(tmp, local)

    _in_parallel(fetch, fetched)
    for relative in fetched:
        index[relative] = {"remote": remote[relative], "local": _local_stat(workdir / relative)}
    _write_index(workdir, index)
    if fetched:
        logger.info("workspace %s: pulled %d file(s) from storage", family.slug, len(fetched))
    return SyncReport(transferred=tuple(fetched))


# Files move in parallel: a data step writes a thousand small images, and one
# request at a time to an object store is a round trip each.
SYNC_THREADS = 8


def _in_parallel(work: Callable[[str], None], items: list[str]) -> None:
    """Run ``work`` on every item with a few threads; the first error is raised."""
    if len(items) < 2:
        for item in items:
            work(item)
        return
    with ThreadPoolExecutor(max_workers=SYNC_THREADS) as pool:
        for future in [pool.submit(work, item) for item in items]:
            future.result()


def _upload(storage: Storage, name: str, path: Path) -> None:
    if not getattr(storage, "file_overwrite", False):
        storage.delete(name)  # this storage never overwrites on save: free the name first
    with path.open("rb") as fh:
        saved = storage.save(name, File(fh))
    if saved != name:
        raise RuntimeError(f"pipeline storage saved {name!r} as {saved!r}; cannot sync it")


def workspace_push(*, family: ModelFamily) -> SyncReport:
    """Upload new or changed work-folder files (no-op with the local backend).

    Order, so that storage never shows a step as done before its files are:
    first stored done-markers that no longer exist locally are deleted (a
    step being redone), then data files are uploaded, then markers.
    """
    if not workspace_is_mirrored():
        return SyncReport()
    storage = _storage()
    workdir = family_workdir(family)
    if not workdir.is_dir():
        return SyncReport()
    index = _read_index(workdir)
    remote = _remote_listing(storage, family.slug)
    local_files = _local_files(workdir)
    present = set(local_files)
    deleted = [r for r in sorted(remote) if _is_marker(r) and r not in present]
    for relative in deleted:
        storage.delete(pipeline_storage_name(family, relative))
        index.pop(relative, None)
    changed = []
    for relative in local_files:
        known = index.get(relative)
        if (
            known is not None
            and relative in remote
            and known.get("remote") == remote[relative]
            and known.get("local") == _local_stat(workdir / relative)
        ):
            continue
        changed.append(relative)
    data = [r for r in changed if not _is_marker(r)]
    markers = [r for r in changed if _is_marker(r)]

    def upload(relative: str) -> None:
        _upload(storage, pipeline_storage_name(family, relative), workdir / relative)

    _in_parallel(upload, data)  # every data file is stored before any marker is
    _in_parallel(upload, markers)
    ordered = data + markers
    if ordered:
        stamps = _remote_listing(storage, family.slug)
        for relative in ordered:
            index[relative] = {"remote": stamps[relative], "local": _local_stat(workdir / relative)}
        logger.info("workspace %s: pushed %d file(s) to storage", family.slug, len(ordered))
    _write_index(workdir, index)
    return SyncReport(transferred=tuple(ordered), deleted=tuple(deleted))
