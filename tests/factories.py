"""Factories for studies, built on a synthetic pipeline manifest.

``family_with_stimuli`` writes tiny PNGs and a manifest exactly as
``workers.pipeline`` would, then imports it with the real
``pipeline_import_manifest``; tests get real rows and real files in seconds,
without training a model.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import factory
import numpy as np
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


def _png(path: Path, colour: tuple[int, int, int], *, seed: str | None = None) -> str:
    """An 8x8 PNG of ``colour``; with ``seed``, seeded noise on top, so files differ in size
    the way rendered maps do (the same noise law for real and catch stimuli)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if seed is None:
        Image.new("RGB", (8, 8), colour).save(path)
    else:
        rng = np.random.default_rng(zlib.crc32(seed.encode()))
        noise = rng.integers(-12, 13, size=(8, 8, 3))
        pixels = np.clip(np.array(colour)[None, None, :] + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(path)
    return path.name


# (kind, catch) of the stimuli the pipeline renders per image, variant and method.
RENDERED = (("heat", ""), ("occlusion", ""), ("heat", "rot180"), ("occlusion", "rot180"),
            ("occlusion", "light"))  # fmt: skip


def write_manifest(
    workdir: Path,
    *,
    class_names: list[str] = CLASS_NAMES,
    images_per_class: int = 2,
    cprs: list[float] = CPRS,
    blank: set[tuple[str, str]] | None = None,
    catch: bool = True,
) -> dict:
    """Write a manifest with PNG files under ``workdir``; ``blank`` holds (image_key, label).

    Like the pipeline, it writes catch stimuli (``rot180`` of both kinds, ``light``
    occlusion) next to the real maps; ``catch=False`` leaves them out, as a run
    from before catch trials did.
    """
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
                for kind, catch_kind in RENDERED:
                    if catch_kind and not catch:
                        continue
                    sub = f"catch/{catch_kind}-{kind}" if catch_kind else kind
                    sfile = f"stimuli/{variant['label']}/{sub}/{name}_{n}.png"
                    _png(
                        workdir / sfile,
                        (colour[0], colour[1], 50 if kind == "heat" else 200),
                        seed=sfile,
                    )
                    row = {
                        "image_key": key,
                        "variant": variant["label"],
                        "kind": kind,
                        "method": "gradcam",
                        "file": sfile,
                        "predicted_class": class_index,
                        "blank": (key, variant["label"]) in blank,
                        "metrics": {} if catch_kind else {"gini": 0.5},
                        "provenance": {"cpr": variant["cpr_target"], "layer": "features.29"},
                    }
                    if catch_kind:
                        row["catch"] = catch_kind
                    stimuli.append(row)
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
