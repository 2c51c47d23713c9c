"""The work folder's sync with the ``pipeline`` storage, on any storage: a no-op when
the storage is the work folder itself (local backend), else pull/push of changes only."""

from __future__ import annotations

import pytest

from apps.pipeline.services import family_create, family_workdir, workspace_pull, workspace_push
from apps.pipeline.services.workspace import workspace_is_mirrored

pytestmark = pytest.mark.django_db


def test_with_the_local_backend_the_work_folder_is_the_stored_copy(settings):
    family = family_create(name="local", slug="local")
    workdir = family_workdir(family)
    (workdir / "steps").mkdir(parents=True)
    (workdir / "steps" / "data.json").write_text("{}")
    assert not workspace_is_mirrored()
    assert workspace_push(family=family).transferred == ()
    assert workspace_pull(family=family).transferred == ()
    assert sorted(p.name for p in workdir.rglob("*")) == ["data.json", "steps"]  # no sync index


def test_hosts_exchange_only_what_changed_through_a_shared_storage(settings, tmp_path):
    # given a pipeline storage that is not the work folder (a shared mount, say)
    settings.STORAGES = {
        **settings.STORAGES,
        "pipeline": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "shared"), "base_url": None},
        },
    }
    family = family_create(name="fam", slug="fam")
    settings.PIPELINE_ROOT = tmp_path / "host-a"
    assert workspace_is_mirrored()
    a = family_workdir(family)
    (a / "variants").mkdir(parents=True)
    (a / "variants" / "cpr1.pt").write_bytes(b"v1")
    (a / "steps").mkdir()
    (a / "steps" / "train.json").write_text("{}")
    assert set(workspace_push(family=family).transferred) == {"variants/cpr1.pt",
                                                              "steps/train.json"}  # fmt: skip
    # when host B pulls, it gets both files; pulling again fetches nothing
    settings.PIPELINE_ROOT = tmp_path / "host-b"
    b = family_workdir(family)
    assert set(workspace_pull(family=family).transferred) == {"variants/cpr1.pt",
                                                              "steps/train.json"}  # fmt: skip
    assert (b / "variants" / "cpr1.pt").read_bytes() == b"v1"
    assert workspace_pull(family=family).transferred == ()
    # when host A changes one file and pushes, B pulls that file only
    settings.PIPELINE_ROOT = tmp_path / "host-a"
    (a / "variants" / "cpr1.pt").write_bytes(b"v2, longer")
    assert workspace_push(family=family).transferred == ("variants/cpr1.pt",)
    settings.PIPELINE_ROOT = tmp_path / "host-b"
    assert workspace_pull(family=family).transferred == ("variants/cpr1.pt",)
    assert (b / "variants" / "cpr1.pt").read_bytes() == b"v2, longer"
    # and a local change that was never pushed (a killed step's leftover) is restored
    (b / "variants" / "cpr1.pt").write_bytes(b"half-written")
    assert workspace_pull(family=family).transferred == ("variants/cpr1.pt",)
    assert (b / "variants" / "cpr1.pt").read_bytes() == b"v2, longer"
