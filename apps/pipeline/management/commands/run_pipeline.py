"""``manage.py run_pipeline``: create a model family and build it (train, prune, explain).

The paper's pipeline in one command, on a machine with a GPU, the Imagenette
folder and the VGG-16 weights file::

    python manage.py run_pipeline --preset paper --data-root /data/imagenette2

Everything is also settable one by one (``--arch``, ``--cprs``, ``--set
KEY=VALUE`` for any ``workers.pipeline.PipelineConfig`` field). Without a
Celery broker the job runs in this process; with one, it is queued on the
``gpu`` queue and this command follows it (``--no-wait`` returns at once).
Running the same command again resumes an interrupted or failed job from its
last finished step and never duplicates the family.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.text import slugify

from apps.pipeline.models import ModelFamily, PipelineJob, Stimulus
from apps.pipeline.selectors import family_latest_job, family_variants
from apps.pipeline.services import (
    family_build,
    family_create,
    family_pipeline_config,
    family_workdir,
    job_create,
)
from apps.pipeline.steplog import step_log_to

# The paper's setup (PROTOCOL §1-3): ImageNet VGG-16 fine-tuned on Imagenette,
# global L1 pruning of the conv layers to CPR 2..32 with fine-tuning after each
# step, Grad-CAM heat- and occlusion-maps of 50 test images per class.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "name": "VGG-16 on Imagenette (Weber et al.)",
        "dataset": "imagenette",
        "architecture": "vgg16",
        "cprs": [2, 4, 8, 16, 32],
        "prune_method": "global",
        "schedule": "iterative",
        "config": {"pretrained": True, "images_per_class": 50, "methods": ["gradcam"]},
    },
    "demo": {
        "name": "Demo VGG on generated shapes",
        "dataset": "generated",
        "architecture": "demo_vgg",
        "cprs": [2, 4, 8, 16, 32],
        "prune_method": "global",
        "schedule": "iterative",
        "config": {},
    },
}
# Where and how fast a job runs, not what it computes: may change between runs.
RUNTIME_KEYS = frozenset({"device", "num_workers"})
FAMILY_FIELDS = ("dataset", "architecture", "cprs", "prune_method", "schedule", "seed")


def _put(fields: dict[str, Any], key: str, value: Any) -> None:
    """A model-family column goes on the family, any other key into its pipeline config."""
    (fields if key in FAMILY_FIELDS + ("data_root",) else fields["config"])[key] = value


def _parse_set(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise CommandError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(raw)  # numbers, true/false, null, lists
        except json.JSONDecodeError:
            out[key] = raw  # a bare string
    return out


class Command(BaseCommand):
    help = "Create a model family and run its pipeline (train, prune to each CPR, explain)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--preset", choices=sorted(PRESETS), help="start from a preset")
        parser.add_argument("--name", help="family name (default: the preset's)")
        parser.add_argument("--slug", help="family slug (default: from the name)")
        parser.add_argument("--dataset", choices=[c for c, _ in ModelFamily.Dataset.choices])
        parser.add_argument(
            "--data-root", help="Imagenette folder (imagenette2[-320|-160]) or tree"
        )
        parser.add_argument("--arch", dest="architecture",
                            choices=["demo_vgg", "vgg16", "resnet18", "resnet50"])  # fmt: skip
        parser.add_argument("--pretrained", action=argparse.BooleanOptionalAction, default=None,
                            help="start from ImageNet weights (torchvision enum)")  # fmt: skip
        parser.add_argument("--weights-dir", help="folder holding e.g. vgg16-397923af.pth")
        parser.add_argument("--cprs", nargs="+", type=float, help="target CPRs, e.g. 2 4 8 16 32")
        parser.add_argument(
            "--prune-method", choices=[c for c, _ in ModelFamily.PruneMethod.choices]
        )
        parser.add_argument("--schedule", choices=[c for c, _ in ModelFamily.Schedule.choices])
        parser.add_argument("--images-per-class", type=int, help="stimulus images per class")
        parser.add_argument("--methods", nargs="+", help="attribution methods (default gradcam)")
        parser.add_argument("--seed", type=int)
        parser.add_argument("--device", help="cuda, cuda:1 or cpu (default: cuda if available)")
        parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                            help="any other PipelineConfig field, value as JSON")  # fmt: skip
        parser.add_argument("--config", type=Path, help="JSON file of PipelineConfig fields")
        parser.add_argument("--check", action="store_true",
                            help="validate and print the configuration, run nothing")  # fmt: skip
        parser.add_argument("--no-wait", action="store_true",
                            help="with a broker: queue the job and return")  # fmt: skip

    # --- building the family's fields ------------------------------------------------------
    def _fields(self, opts: dict[str, Any]) -> dict[str, Any]:
        base = json.loads(json.dumps(PRESETS[opts["preset"]])) if opts["preset"] else {}
        fields: dict[str, Any] = {"config": base.pop("config", {}), **base}
        if opts["config"]:
            try:
                extra = json.loads(Path(opts["config"]).read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise CommandError(f"--config {opts['config']}: {exc}") from None
            if not isinstance(extra, dict):
                raise CommandError(f"--config {opts['config']}: expected a JSON object")
            for key, value in extra.items():
                _put(fields, key, value)
        for key in FAMILY_FIELDS:
            if opts.get(key) is not None:
                fields[key] = opts[key]
        if opts["data_root"]:
            fields["data_root"] = str(Path(opts["data_root"]).expanduser().resolve())
        for opt, key in (("pretrained", "pretrained"), ("weights_dir", "weights_dir"),
                         ("images_per_class", "images_per_class"), ("methods", "methods"),
                         ("device", "device")):  # fmt: skip
            if opts.get(opt) is not None:
                fields["config"][key] = opts[opt]
        for key, value in _parse_set(opts["set"]).items():
            _put(fields, key, value)
        fields.setdefault("dataset", ModelFamily.Dataset.GENERATED)
        fields.setdefault("architecture", "demo_vgg")
        fields.setdefault("cprs", [2, 4, 8, 16, 32])
        name = opts["name"] or fields.pop("name", None)
        fields.pop("name", None)
        if not name:
            name = f"{fields['architecture']} on {fields['dataset']}"
        fields["name"] = name
        fields["slug"] = opts["slug"] or slugify(name)[:80]
        return fields

    def _preflight(self, fields: dict[str, Any], *, local: bool) -> tuple[list[str], list[str]]:
        """(errors, warnings) visible from this machine; errors only when it runs the job."""
        from workers.models import weights_file

        errors, warnings = [], []
        root = fields.get("data_root")
        problem = None
        if fields["dataset"] != "generated" and root and not Path(root).is_dir():
            problem = f"data root {root!r} is not a folder"
        elif fields["dataset"] == "imagenette" and root:
            from workers.data.imagenette import resolve_imagenette_root

            try:
                resolve_imagenette_root(Path(root))
            except FileNotFoundError as exc:
                problem = str(exc)
        if problem:
            (errors if local else warnings).append(problem)
        cfg = fields["config"]
        if cfg.get("pretrained") and fields["architecture"] != "demo_vgg":
            path = weights_file(fields["architecture"], weights_dir=cfg.get("weights_dir"))
            if not path.exists():
                warnings.append(
                    f"pretrained weights file {path.name!r} is not in {str(path.parent)!r}: "
                    "torchvision downloads it if the worker is online; offline, copy it "
                    "there (or pass --weights-dir)"
                )
        if not local:
            warnings = [f"{w} (checked on this machine; the worker's may differ)" for w in warnings]
        return errors, warnings

    # --- main -----------------------------------------------------------------------------
    def handle(self, *args: Any, **opts: Any) -> None:
        fields = self._fields(opts)
        call_command("migrate", interactive=False, verbosity=0)  # a fresh checkout works too
        from config.celery_app import app

        local = bool(app.conf.task_always_eager)  # no broker: the job runs in this process
        family = ModelFamily.objects.filter(slug=fields["slug"]).first()
        if family is None:
            candidate = ModelFamily(**fields)
            try:
                candidate.full_clean()
            except ValidationError as exc:
                raise CommandError(f"invalid pipeline configuration: {_messages(exc)}") from None
        else:
            candidate = family
            wanted = family_pipeline_config(ModelFamily(**fields))
            have = family_pipeline_config(family)
            keys = set(wanted) | set(have)
            diff = sorted(k for k in keys - RUNTIME_KEYS if wanted.get(k) != have.get(k))
            if diff:
                raise CommandError(
                    f"model family '{family.slug}' already exists with a different "
                    f"configuration (differs in: {', '.join(diff)}); pass another --slug "
                    "or --name to build a new family"
                )
            runtime = {k: fields["config"][k] for k in RUNTIME_KEYS if k in fields["config"]}
            if runtime and not opts["check"]:  # where it runs may change between runs
                family.config = {**family.config, **runtime}
                family.save(update_fields=["config", "updated_at"])
        from workers.pipeline import PipelineConfig

        resolved = PipelineConfig.from_dict(family_pipeline_config(candidate)).to_dict()
        self.stdout.write(f"Model family '{fields['slug']}', pipeline configuration:")
        self.stdout.write(json.dumps(resolved, indent=2, sort_keys=True))
        errors, warnings = self._preflight(fields, local=local)
        for warning in warnings:
            self.stderr.write(f"warning: {warning}")
        if errors:
            raise CommandError("cannot run the pipeline here: " + "; ".join(errors))
        if opts["check"]:
            self.stdout.write(self.style.SUCCESS("Configuration is valid (--check: nothing run)."))
            return
        if family is None:
            family = family_create(**fields)
            self.stdout.write(f"Created model family '{family.slug}' (id {family.pk}).")
        self.stdout.write(f"Work folder: {family_workdir(family)}")
        if not local and opts["no_wait"]:
            job = family_latest_job(family=family)
            if job is None or job.status in PipelineJob.RETRYABLE:
                job = job_create(family=family)
            self.stdout.write(f"Job {job.pk}: {job.status}. Follow it in the admin "
                              f"(/admin/pipeline/pipelinejob/{job.pk}/).")  # fmt: skip
            return
        if local:
            self.stdout.write("No CELERY_BROKER_URL: running the job in this process.")
        with step_log_to(self.stdout):
            job = family_build(family=family, report=self.stdout.write)
        if job.status != PipelineJob.Status.SUCCEEDED:
            raise CommandError(f"job {job.pk} failed:\n{job.error}")
        self._summary(family, job)

    def _summary(self, family: ModelFamily, job: PipelineJob) -> None:
        self.stdout.write(self.style.SUCCESS(f"Job {job.pk} succeeded."))
        self.stdout.write(f"{'variant':>8} {'CPR':>8} {'sparsity':>9} {'test acc':>9}")
        for v in family_variants(family=family):
            acc = "-" if v.test_accuracy is None else f"{100 * v.test_accuracy:.1f} %"
            self.stdout.write(
                f"{v.label:>8} {v.cpr_measured:8.3f} {100 * v.conv_sparsity:8.2f}% {acc:>9}"
            )
        n_images = family.images.count()
        n_stimuli = Stimulus.objects.filter(variant__family=family, catch="").count()
        n_catch = Stimulus.objects.filter(variant__family=family).exclude(catch="").count()
        total = sum(job.timings.values()) if job.timings else 0.0
        took = f"{total:.1f} s" if total < 120 else f"{total / 60:.1f} min"
        self.stdout.write(
            f"{n_images} stimulus images, {n_stimuli} stimuli (+{n_catch} for catch trials); "
            f"the steps took {took}. "
            "Next: create a study for this family in the admin."
        )


def _messages(exc: ValidationError) -> str:
    """``field: message`` for field errors, the bare message for the others."""
    if not hasattr(exc, "error_dict"):
        return "; ".join(exc.messages)
    return "; ".join(
        msg if field == "__all__" else f"{field}: {msg}"
        for field, msgs in exc.message_dict.items()
        for msg in msgs
    )
