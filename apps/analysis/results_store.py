"""Analysis results in the ``results`` storage, streamed in and out.

Layout: ``<study slug>/<key>/<relative path>`` for every file of one analysis
(``key`` as in :class:`~apps.analysis.models.AnalysisRun`), a ``DONE`` marker
saved last (a folder without it is incomplete and never shown), and the
download archive ``<study slug>/<key>.zip`` next to the folder, built once on
first download. With ``STORAGE_BACKEND=local`` the storage's location is
``RESULTS_ROOT``, so the files are where they always were; with ``s3`` they are
objects under the bucket's ``results/`` prefix and any web host reads them.

Nothing here reads a whole file into memory: reads are streams (a local file,
or the S3 object's body, never django-storages' ``S3File``, which downloads
the object into memory first), the archive is written to a temporary file on
disk member by member in ``CHUNK`` pieces and uploaded from there.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any

from django.core.files import File
from django.core.files.storage import Storage, storages

DONE = "DONE"
CHUNK = 1024 * 1024  # bytes per read when copying a stored file
SPOOL_BYTES = 256 * 1024  # the archive stays in memory only while smaller than this
ZIP64_FROM = 2**31 - 1  # members from this size on need ZIP64 headers


def results_storage() -> Storage:
    return storages["results"]


def _is_s3(storage: Storage) -> bool:
    return hasattr(type(storage), "bucket") and hasattr(storage, "bucket_name")


def open_stream(name: str, *, storage: Storage | None = None) -> IO[bytes]:
    """A binary stream of the stored file ``name``: read it in pieces, close it after.

    Local storage: the file itself. S3: the object's body as it arrives over the
    network (``FileNotFoundError`` when the object is missing, as locally).
    """
    storage = storage or results_storage()
    if not _is_s3(storage):
        return storage.open(name, "rb")
    from botocore.exceptions import ClientError
    from storages.utils import clean_name

    s3: Any = storage  # storages.backends.s3.S3Storage
    key = s3._normalize_name(clean_name(name))
    try:
        return s3.bucket.Object(key).get()["Body"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            raise FileNotFoundError(f"no stored result file {name!r}") from exc
        raise


def iter_files(prefix: str, *, storage: Storage | None = None) -> Iterator[str]:
    """Every stored file under the folder ``prefix``, as names relative to it (posix)."""
    storage = storage or results_storage()
    try:
        dirs, files = storage.listdir(prefix)
    except FileNotFoundError:  # a local folder that does not exist (S3 lists nothing)
        return
    for name in files:
        yield name
    for sub in dirs:
        for name in iter_files(f"{prefix}/{sub}", storage=storage):
            yield f"{sub}/{name}"


def list_folders(prefix: str, *, storage: Storage | None = None) -> list[str]:
    storage = storage or results_storage()
    try:
        return list(storage.listdir(prefix)[0])
    except FileNotFoundError:
        return []


def delete_folder(prefix: str, *, storage: Storage | None = None) -> None:
    """Remove every stored file under ``prefix`` (the marker first: the folder stops counting)."""
    storage = storage or results_storage()
    names = sorted(iter_files(prefix, storage=storage), key=lambda n: n != DONE)
    for name in names:
        storage.delete(f"{prefix}/{name}")
    if not _is_s3(storage):  # empty local folders left behind
        with contextlib.suppress(FileNotFoundError, NotImplementedError):
            shutil.rmtree(Path(storage.path(prefix)))


def _save_exact(storage: Storage, name: str, content: File) -> None:
    """Save under exactly ``name`` (results storages keep ``file_overwrite`` off)."""
    if storage.exists(name):
        storage.delete(name)
    saved = storage.save(name, content)
    if saved != name:  # another writer saved the same name between our delete and save
        storage.delete(saved)
        raise RuntimeError(f"result file {name!r} was written by someone else at the same time")


def upload_folder(*, folder: Path, prefix: str, storage: Storage | None = None) -> list[str]:
    """Store every file of the local ``folder`` under ``prefix``, then the ``DONE`` marker.

    Whatever ``prefix`` held before (a half-finished upload) is removed first, so
    a marker in storage always means the complete set of files. Returns the
    stored names relative to ``prefix``.
    """
    storage = storage or results_storage()
    delete_folder(prefix, storage=storage)
    stored = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != DONE):
        relative = path.relative_to(folder).as_posix()
        with path.open("rb") as fh:
            _save_exact(storage, f"{prefix}/{relative}", File(fh, name=path.name))
        stored.append(relative)
    with tempfile.TemporaryFile() as marker:
        marker.write(b"ok\n")
        marker.seek(0)
        _save_exact(storage, f"{prefix}/{DONE}", File(marker, name=DONE))
    return stored


def write_zip_from_storage(
    *, prefix: str, names: list[str], out: IO[bytes], storage: Storage | None = None
) -> None:
    """Write the files ``prefix/<name>`` as one ZIP archive into ``out`` (a binary file).

    Each member is copied from its stored stream in ``CHUNK`` pieces: memory
    stays flat however large the files are.
    """
    storage = storage or results_storage()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            stored = f"{prefix}/{name}"
            big = storage.size(stored) >= ZIP64_FROM
            info = zipfile.ZipInfo(PurePosixPath(name).as_posix())
            info.compress_type = zipfile.ZIP_DEFLATED
            src = open_stream(stored, storage=storage)
            try:
                with archive.open(info, "w", force_zip64=big) as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
            finally:
                src.close()


def zip_name(prefix: str) -> str:
    return f"{prefix}.zip"


def ensure_zip(*, prefix: str, names: list[str], storage: Storage | None = None) -> str:
    """The stored archive of the folder ``prefix`` (built and saved on first use); its name."""
    storage = storage or results_storage()
    name = zip_name(prefix)
    if storage.exists(name):
        return name
    # An S3 object appears whole when its upload ends; a local file is written in
    # place, so it is saved under a private name and renamed (atomic) when complete.
    target = name if _is_s3(storage) else f"{prefix}.zip.partial-{secrets.token_hex(8)}"
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as tmp:
        write_zip_from_storage(prefix=prefix, names=names, out=tmp, storage=storage)
        tmp.seek(0)
        saved = storage.save(target, File(tmp, name=PurePosixPath(name).name))
    if target != name:
        os.replace(storage.path(saved), storage.path(name))
    elif saved != name:  # a concurrent download built it first: keep theirs
        storage.delete(saved)
    return name
