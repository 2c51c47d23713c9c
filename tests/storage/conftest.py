"""Storage on S3 for tests: moto's in-process S3 (``mock_aws``) and the settings' own s3 block.

The ``STORAGES`` used here are the ones ``config/settings.py`` builds with
``STORAGE_BACKEND=s3`` (read by running that file with the s3 environment), so
the tests check the production options (prefixes, presigning, Cache-Control),
not a copy of them. Overriding ``settings.STORAGES`` resets Django's cached
storages (``django.test.signals.storages_changed``: ``storages`` and
``default_storage``); the fixture checks that it did.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

BUCKET = "xai-test-bucket"
REGION = "us-east-1"
SETTINGS_FILE = Path(__file__).resolve().parents[2] / "config" / "settings.py"


def s3_storages(monkeypatch, *, bucket: str = BUCKET, presigned: bool = True) -> dict:
    """The ``STORAGES`` block config/settings.py builds for ``STORAGE_BACKEND=s3``."""
    with monkeypatch.context() as env:
        env.setenv("DEBUG", "1")
        env.setenv("STORAGE_BACKEND", "s3")
        env.setenv("AWS_STORAGE_BUCKET_NAME", bucket)
        env.setenv("AWS_S3_REGION_NAME", REGION)
        env.setenv("AWS_MEDIA_PRESIGNED", "1" if presigned else "0")
        env.delenv("AWS_S3_ENDPOINT_URL", raising=False)
        values = runpy.run_path(str(SETTINGS_FILE), run_name="settings_s3_for_tests")
    return values["STORAGES"]


def bucket_keys(bucket: str = BUCKET) -> list[str]:
    import boto3

    s3 = boto3.client("s3", region_name=REGION)
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys += [item["Key"] for item in page.get("Contents", [])]
    return keys


@pytest.fixture
def s3(monkeypatch, settings):
    """Every storage on one (moto) bucket, as with ``STORAGE_BACKEND=s3``; yields the bucket name."""
    from moto import mock_aws

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        import boto3

        boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
        settings.STORAGES = s3_storages(monkeypatch)
        from django.core.files.storage import default_storage, storages

        for storage in (storages["default"], storages["pipeline"], storages["results"]):
            assert getattr(storage, "bucket_name", None) == BUCKET, "cached storages not reset"
        assert default_storage.bucket_name == BUCKET
        yield BUCKET
