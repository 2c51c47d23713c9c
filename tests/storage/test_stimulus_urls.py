"""Stimuli on S3: a rater's URL carries the opaque key and the signature, nothing else,
and the stored objects carry a long Cache-Control and their image type."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

import boto3
import pytest

from apps.studies import onboarding
from tests.factories import CLASS_NAMES, family_with_stimuli
from tests.storage.conftest import BUCKET, REGION
from tests.storage.raters import HttpRater
from tests.storage.studies import study_on

pytestmark = pytest.mark.django_db

OPAQUE_KEY = re.compile(r"media/(s|img|mask)/[0-9a-f]{2}/[0-9a-f]{32}\.png")
# Every query parameter a SigV4 presigned GET may carry, with the only values allowed.
SIGNING = {
    "X-Amz-Algorithm": re.compile(r"AWS4-HMAC-SHA256"),
    "X-Amz-Credential": re.compile(rf"[A-Za-z0-9]+/\d{{8}}/{REGION}/s3/aws4_request"),
    "X-Amz-Date": re.compile(r"\d{8}T\d{6}Z"),
    "X-Amz-Expires": re.compile(r"\d+"),
    "X-Amz-SignedHeaders": re.compile(r"host"),
    "X-Amz-Security-Token": re.compile(r"[A-Za-z0-9+/=]+"),
    "X-Amz-Signature": re.compile(r"[0-9a-f]{64}"),
}


def _urls(payload: dict) -> list[str]:
    return [value for key, value in payload.items() if key.endswith("_url")]


def _assert_opaque(url: str, forbidden: list[str]) -> str:
    """The URL is the bucket, the opaque key and signing parameters; returns the key."""
    parts = urlsplit(url)
    assert parts.scheme == "https" and parts.hostname.startswith(BUCKET), url
    key = parts.path.lstrip("/")
    if parts.hostname == "s3.amazonaws.com":  # path-style addressing
        key = key.removeprefix(f"{BUCKET}/")
    assert OPAQUE_KEY.fullmatch(key), f"not an opaque key: {key}"
    query = parse_qsl(parts.query, keep_blank_values=True)
    assert {"X-Amz-Signature", "X-Amz-Expires", "X-Amz-Credential"} <= dict(query).keys()
    for name, value in query:  # no response-content-disposition, no content-type override
        assert name in SIGNING, f"unexpected query parameter {name} in {url}"
        assert SIGNING[name].fullmatch(value), f"{name}={value}"
    unsigned = url.split("X-Amz-Signature=")[0].lower()
    for word in forbidden:
        assert word.lower() not in unsigned, f"{word!r} shows in {url}"
    return key


def test_rater_and_example_urls_are_presigned_opaque_keys(s3):
    # given a study whose stimuli were imported into S3
    family = family_with_stimuli(
        slug="fam-blinding", images_per_class=2, class_names=CLASS_NAMES[:3], cprs=[1, 2, 8]
    )
    study = study_on(family, slug="blinding-study", pair=("cpr1", "cpr2"), conditions=("cpr8",))
    forbidden = [
        study.slug, study.name, family.slug, *family.class_names, "cpr", "gradcam",
        "occlusion", "heat", "rot180", "catch", "variant",
        *family.variants.values_list("label", flat=True),
        *study.experiments.values_list("name", flat=True),
    ]  # fmt: skip
    keys = set()
    for experiment in study.experiments.all():
        # when a rater gets tasks through the API, and the instructions' worked example
        rater = HttpRater(experiment.code)
        for _ in range(2):
            task = rater.next()["task"]
            assert _urls(task), task
            keys |= {_assert_opaque(url, forbidden) for url in _urls(task)}
            assert rater.answer(task["assignment_id"], 0) == 201
        example = onboarding.example_presentation(experiment)
        assert example is not None
        keys |= {_assert_opaque(url, forbidden) for url in _urls(example)}
    # then every URL named an object in the bucket, with a year's cache and its image type
    s3_client = boto3.client("s3", region_name=REGION)
    assert keys
    for key in keys:
        head = s3_client.head_object(Bucket=BUCKET, Key=key)
        max_age = int(re.search(r"max-age=(\d+)", head["CacheControl"]).group(1))
        assert max_age >= 30 * 24 * 3600 and "immutable" in head["CacheControl"]
        assert head["ContentType"] == "image/png"
        assert "ContentDisposition" not in head


def test_a_presigned_url_expires_and_is_signed_for_one_key(s3):
    from django.core.files.storage import default_storage

    study = study_on(
        family_with_stimuli(slug="fam-signed", images_per_class=1, class_names=CLASS_NAMES[:2],
                            cprs=[1, 2]),
        slug="signed", pair=("cpr1", "cpr2"), conditions=("cpr1",),
    )  # fmt: skip
    name = study.family.variants.first().stimuli.first().file
    url = default_storage.url(name)
    query = dict(parse_qsl(urlsplit(url).query))
    # a few hours, never open-ended
    assert 0 < int(query["X-Amz-Expires"]) <= 7 * 24 * 3600
    other = default_storage.url(study.family.variants.last().stimuli.last().file)
    assert dict(parse_qsl(urlsplit(other).query))["X-Amz-Signature"] != query["X-Amz-Signature"]
