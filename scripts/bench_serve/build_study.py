"""Build (or close) a benchmark study in the database named by ``DATABASE_URL``.

The rater loop only ever returns stimulus *URLs*, so the bench needs no image
files: the family, its variants, images and heat-map stimuli are written with
``bulk_create`` under opaque names like ``s/ab/<32 hex>.png`` (as the pipeline
would name them). The study itself goes through the real services
(``study_create`` → ``experiment_create`` → ``study_launch``), so tasks and
answer slots are exactly what a researcher's launch makes.

    DATABASE_URL=postgres://… uv run --frozen python scripts/bench_serve/build_study.py \\
        build --slug bench-1k --tasks 1000 --pairs 1
    … build_study.py close --code <experiment code>

``build`` prints progress on stderr and one JSON line on stdout (study id,
experiment code, task count, seconds); ``close`` closes the experiment's study,
which ends every rater's page cleanly (the timed runs use it to send raters to
the done page).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.db import transaction  # noqa: E402

from apps.pipeline.models import ModelFamily, ModelVariant, SourceImage, Stimulus  # noqa: E402
from apps.studies.models import Experiment  # noqa: E402
from apps.studies.services import (  # noqa: E402
    experiment_create,
    study_close,
    study_create,
    study_launch,
)

CLASS_NAMES = [
    "tench",
    "springer",
    "cassette",
    "chainsaw",
    "church",
    "horn",
    "truck",
    "pump",
    "golfball",
    "parachute",
]
CPRS = [1, 2, 4, 8, 32]
# The 10 pairs of the 5 variants, ("cpr1", "cpr2") first: a 1-pair study uses only it.
PAIRS = [[f"cpr{a}", f"cpr{b}"] for a, b in itertools.combinations(CPRS, 2)]
ANSWERS_PER_TASK = 5
# Larger than any rater's share, so raters answer until nothing is left for them.
TASKS_PER_RATER = 100_000


def _opaque(prefix: str) -> str:
    name = uuid.uuid4().hex
    return f"{prefix}/{name[:2]}/{name}.png"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@transaction.atomic
def family_build(*, slug: str, labels: list[str], images_per_class: int) -> ModelFamily:
    """A family of 5 variants and ``images_per_class`` × 10 images with heat maps for ``labels``."""
    family = ModelFamily.objects.create(
        name=f"Bench {slug}",
        slug=slug,
        cprs=CPRS,
        class_names=CLASS_NAMES,
        target_layer="features.29",
    )
    variants = ModelVariant.objects.bulk_create(
        ModelVariant(
            family=family,
            label=f"cpr{k}",
            cpr_target=float(k),
            cpr_measured=float(k),
            conv_sparsity=1 - 1 / k,
        )
        for k in CPRS
    )
    images = SourceImage.objects.bulk_create(
        (
            SourceImage(
                family=family,
                key=f"test/{name}/{n:05d}",
                class_index=class_index,
                class_name=name,
                split="test",
                file=_opaque("img"),
            )
            for class_index, name in enumerate(CLASS_NAMES)
            for n in range(images_per_class)
        ),
        batch_size=5000,
    )
    Stimulus.objects.bulk_create(
        (
            Stimulus(
                image=image,
                variant=variant,
                kind=Stimulus.Kind.HEAT,
                method="gradcam",
                file=_opaque("s"),
                predicted_class=image.class_index,
            )
            for image in images
            for variant in variants
            if variant.label in labels
        ),
        batch_size=5000,
    )
    return family


def build(*, slug: str, tasks: int, pairs: int) -> dict:
    if not 1 <= pairs <= len(PAIRS) or tasks % (10 * pairs):
        raise SystemExit(f"--tasks must be a multiple of 10 × --pairs (1..{len(PAIRS)})")
    images_per_class = tasks // (10 * pairs)
    chosen = PAIRS[:pairs]
    t0 = time.perf_counter()
    family = family_build(
        slug=slug,
        labels=sorted({label for pair in chosen for label in pair}),
        images_per_class=images_per_class,
    )
    t_family = time.perf_counter() - t0
    _log(f"  {slug}: family, {10 * images_per_class} images, stimuli in {t_family:.1f}s")
    study = study_create(name=f"Bench {slug}", slug=slug, family=family)
    experiment = experiment_create(
        study=study,
        slug="pairs",
        name="Pairwise heat maps",
        kind=Experiment.Kind.PAIRWISE,
        stimulus_kind="heat",
        scale_points=5,
        pairs=chosen,
        method="gradcam",
        images_per_class=images_per_class,
        answers_per_task=ANSWERS_PER_TASK,
        tasks_per_rater=TASKS_PER_RATER,
        # The rater loop as Turkle serves it: no practice, no checks (apples to apples).
        practice_trials=0,
        attention_checks=0,
        probe_percent=0,
        catch_percent=0,
    )
    t1 = time.perf_counter()
    study_launch(study=study)
    t_launch = time.perf_counter() - t1
    n_tasks = experiment.tasks.count()
    seconds = time.perf_counter() - t0
    _log(
        f"  {slug}: launched {n_tasks} tasks × {ANSWERS_PER_TASK} in {t_launch:.1f}s "
        f"(build {seconds:.1f}s); rater code {experiment.code}"
    )
    return {
        "slug": slug,
        "study_id": study.pk,
        "experiment_id": experiment.pk,
        "code": experiment.code,
        "tasks": n_tasks,
        "pairs": chosen,
        "images_per_class": images_per_class,
        "answers_per_task": ANSWERS_PER_TASK,
        "build_s": round(seconds, 2),
        "family_s": round(t_family, 2),
        "launch_s": round(t_launch, 2),
    }


def close(*, code: str) -> dict:
    experiment = Experiment.objects.select_related("study").get(code=code)
    study = study_close(study=experiment.study)
    return {"code": code, "study_id": study.pk, "status": study.status}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build and launch a pairwise study")
    b.add_argument("--slug", required=True)
    b.add_argument("--tasks", type=int, required=True, help="a multiple of 10 × --pairs")
    b.add_argument("--pairs", type=int, default=1, help="how many of the 10 variant pairs")
    c = sub.add_parser("close", help="close the study of an experiment")
    c.add_argument("--code", required=True)
    args = parser.parse_args()
    if args.command == "build":
        result = build(slug=args.slug, tasks=args.tasks, pairs=args.pairs)
    else:
        result = close(code=args.code)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
