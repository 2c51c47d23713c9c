"""Opaque file names for anything a rater can see.

A stimulus URL must never reveal a CPR, a class or a method, so every file
shown to raters is stored under a random 128-bit hex name, sharded by its
first two characters.
"""

from __future__ import annotations

import secrets
from pathlib import Path


def opaque_name(*, prefix: str, suffix: str = ".png") -> str:
    token = secrets.token_hex(16)
    return f"{prefix}/{token[:2]}/{token}{suffix}"


def copy_into_storage(*, source: Path, name: str) -> str:
    """Copy ``source`` into default storage under ``name``; returns the stored name."""
    from django.core.files import File
    from django.core.files.storage import default_storage

    with source.open("rb") as fh:
        return default_storage.save(name, File(fh))
