"""``manage.py run_pipeline``: one command from configuration to imported stimuli."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from apps.pipeline.models import ModelFamily, PipelineJob, Stimulus
from apps.pipeline.services import family_create
from tests.workers.conftest import write_colour_tree
from workers.data.imagenette import IMAGENETTE_WNIDS

pytestmark = pytest.mark.django_db(transaction=True)

TINY = [
    "--set", "image_size=32", "--set", "train_max_epochs=3", "--set", "train_patience=3",
    "--set", "target_accuracy=null", "--set", "finetune_max_epochs=1",
    "--set", "deletion_steps=2", "--set", "display_size=48",
]  # fmt: skip


def _run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("run_pipeline", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_one_command_builds_a_family_and_rerunning_it_duplicates_nothing(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    write_colour_tree(root, per_split={"train": 24, "val": 6, "test": 6})
    args = ["--name", "Colours", "--dataset", "folder", "--data-root", str(root),
            "--cprs", "2", "4", "--images-per-class", "2", "--methods", "gradcam", *TINY]  # fmt: skip
    # when the command runs (no broker: in this process)
    out, _ = _run(*args)
    # then the family exists with the given configuration, and its job imported everything
    family = ModelFamily.objects.get()
    assert family.slug == "colours" and family.dataset == "folder"
    assert family.cprs == [2.0, 4.0] and family.config["images_per_class"] == 2
    job = family.jobs.get()
    assert job.status == PipelineJob.Status.SUCCEEDED
    assert sorted(family.variants.values_list("label", flat=True)) == ["cpr1", "cpr2", "cpr4"]
    assert Stimulus.objects.filter(variant__family=family, catch="").count() == 4 * 3 * 2
    # plus the catch stimuli: rot180 heat and occlusion, light occlusion
    assert Stimulus.objects.filter(variant__family=family).exclude(catch="").count() == 4 * 3 * 3
    assert "step prune:4 finished in" in out  # step log while it runs
    assert f"Job {job.pk} succeeded." in out and "cpr4" in out and "4 stimulus images" in out
    # when the same command runs again (on another device, which is not part of the result)
    out, _ = _run(*args, "--device", "cpu")
    # then it reuses the finished family: no second family, job or stimulus
    assert "Pipeline already finished" in out
    assert ModelFamily.objects.get().config["device"] == "cpu"
    assert ModelFamily.objects.count() == 1 and PipelineJob.objects.count() == 1
    assert Stimulus.objects.count() == 4 * 3 * (2 + 3)  # real maps and catch stimuli
    # and the same name with another configuration is refused, naming what differs
    with pytest.raises(CommandError, match=r"differs in: cprs.*another --slug"):
        _run(*[a if a != "4" else "8" for a in args])


def _fake_imagenette_tree(root: Path) -> Path:
    for split in ("train", "val"):
        for wnid, _ in IMAGENETTE_WNIDS:
            (root / "imagenette2-320" / split / wnid).mkdir(parents=True)
    return root


def test_paper_preset_check_prints_the_papers_configuration(tmp_path: Path) -> None:
    data = _fake_imagenette_tree(tmp_path / "data")
    weights = tmp_path / "weights"
    out, err = _run("--preset", "paper", "--data-root", str(data), "--weights-dir",
                    str(weights), "--check")  # fmt: skip
    config = json.loads(out[out.index("{") : out.rindex("}") + 1])
    assert config["dataset"] == "imagenette" and config["architecture"] == "vgg16"
    assert config["pretrained"] is True and config["images_per_class"] == 50
    assert config["cprs"] == [2.0, 4.0, 8.0, 16.0, 32.0] and config["methods"] == ["gradcam"]
    assert config["prune_method"] == "global" and config["schedule"] == "iterative"
    assert config["data_root"] == str(data.resolve())
    # the missing weights file is named with where it belongs
    assert "vgg16-397923af.pth" in err and str(weights) in err
    assert "Configuration is valid" in out
    assert ModelFamily.objects.count() == 0  # --check creates nothing


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "colour=red"], "unknown PipelineConfig keys: colour"),
        (["--set", "nonsense"], "--set expects KEY=VALUE"),
        (["--cprs", "0.5"], "cprs must be non-empty, finite and > 1"),
        (["--dataset", "imagenette"], "data_root is required"),
        (["--dataset", "imagenette", "--data-root", "."], "no Imagenette tree under"),
        (["--dataset", "folder", "--data-root", "/no/such/dir"], "is not a folder"),
        (["--arch", "demo_vgg", "--pretrained"], "demo_vgg has no pretrained weights"),
    ],
)
def test_bad_configurations_are_refused_with_the_reason(args, message) -> None:
    with pytest.raises(CommandError, match=message):
        _run(*args)
    assert ModelFamily.objects.count() == 0


def test_family_create_validates_the_pipeline_configuration() -> None:
    with pytest.raises(ValidationError, match="unknown PipelineConfig keys: no_such_option"):
        family_create(name="bad", config={"no_such_option": 1})
    assert ModelFamily.objects.count() == 0


def test_with_a_broker_local_path_problems_are_warnings() -> None:
    from config.celery_app import app

    # given a broker: the job runs on a worker, whose folders may differ from ours
    eager, app.conf.task_always_eager = app.conf.task_always_eager, False
    try:
        out, err = _run("--dataset", "folder", "--data-root", "/no/such/dir", "--check")
    finally:
        app.conf.task_always_eager = eager
    assert "is not a folder (checked on this machine; the worker's may differ)" in err
    assert "Configuration is valid" in out
