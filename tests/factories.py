"""Factories for studies, built on a synthetic pipeline manifest.

``family_with_stimuli`` writes tiny PNGs and a manifest exactly as
``workers.pipeline`` would, then imports it with the real
``pipeline_import_manifest``; tests get real rows and real files in seconds,
without training a model.
"""

from __future__ import annotations

import json
from pathlib import Path

import factory
from django.conf import settings
from PIL import Image

from apps.pipeline.models import ModelFamily
from apps.pipeline.services import family_create, pipeline_import_manifest
from apps.studies.models import Study

CLASS_NAMES = [
    "circle",
    "square",
    "triangle",
    "star",
    "cross",
    "ring",
    "stripes",
    "diamond",
    "hexagon",
    "arrow",
]
CPRS = [1, 2, 4, 8, 16, 32]


def _png(path: Path, colour: tuple[int, int, int]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)
    return path.name


def write_manifest(
    workdir: Path,
    *,
    class_names: list[str] = CLASS_NAMES,
    images_per_class: int = 2,
    cprs: list[float] = CPRS,
    blank: set[tuple[str, str]] | None = None,
) -> dict:
    """Write a manifest with PNG files under ``workdir``; ``blank`` holds (image_key, label)."""
    blank = blank or set()
    variants, images, stimuli = [], [], []
    for cpr in cprs:
        label = f"cpr{cpr:g}"
        variants.append(
            {
                "label": label,
                "cpr_target": float(cpr),
                "cpr_measured": float(cpr),
                "conv_sparsity": 1 - 1 / cpr,
                "test_accuracy": 0.95 - 0.01 * cprs.index(cpr),
                "checkpoint": f"variants/{label}.pt",
                "checkpoint_sha256": f"{cprs.index(cpr):064d}",
            }
        )
    for class_index, name in enumerate(class_names):
        for n in range(images_per_class):
            key = f"test/{name}/{n:04d}"
            colour = (class_index * 20, n * 40, 100)
            file = f"images/{name}_{n}.png"
            _png(workdir / file, colour)
            images.append(
                {
                    "key": key,
                    "class_index": class_index,
                    "split": "test",
                    "file": file,
                    "mask": None,
                }
            )
            for variant in variants:
                for kind in ("heat", "occlusion"):
                    sfile = f"stimuli/{variant['label']}/{kind}/{name}_{n}.png"
                    _png(workdir / sfile, (colour[0], colour[1], 50 if kind == "heat" else 200))
                    stimuli.append(
                        {
                            "image_key": key,
                            "variant": variant["label"],
                            "kind": kind,
                            "method": "gradcam",
                            "file": sfile,
                            "predicted_class": class_index,
                            "blank": (key, variant["label"]) in blank,
                            "metrics": {"gini": 0.5},
                            "provenance": {"cpr": variant["cpr_target"], "layer": "features.29"},
                        }
                    )
    manifest = {
        "config": {},
        "class_names": class_names,
        "target_layer": "features.29",
        "variants": variants,
        "images": images,
        "stimuli": stimuli,
    }
    (workdir / "manifest.json").write_text(json.dumps(manifest))
    return manifest


def family_with_stimuli(*, slug: str = "fam", images_per_class: int = 2, **kwargs) -> ModelFamily:
    family = family_create(name=f"Family {slug}", slug=slug)
    workdir = Path(settings.PIPELINE_ROOT) / slug
    manifest = write_manifest(workdir, images_per_class=images_per_class, **kwargs)
    return pipeline_import_manifest(family=family, workdir=workdir, manifest=manifest)


class StudyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Study

    name = factory.Sequence(lambda n: f"Study {n}")
    slug = factory.Sequence(lambda n: f"study-{n}")
    family = factory.LazyFunction(
        lambda: family_with_stimuli(slug=f"fam-{ModelFamily.objects.count()}")
    )
