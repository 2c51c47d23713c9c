"""Copy a finished pipeline's manifest into the database and the media storage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.db import transaction

from apps.core.files import copy_into_storage, opaque_name
from apps.pipeline.models import ModelFamily, ModelVariant, SourceImage, Stimulus
from apps.pipeline.services.workspace import pipeline_storage_name


@transaction.atomic
def pipeline_import_manifest(
    *, family: ModelFamily, workdir: Path, manifest: dict[str, Any]
) -> ModelFamily:
    """Create or update variants, images and stimuli from a pipeline manifest.

    Idempotent: one transaction, rows keyed by their natural keys (a variant by
    family and label, an image by family and key, a stimulus by image, variant,
    kind, method and ``catch``: "" for a real map, "rot180"/"light" for a catch
    stimulus); files already imported keep their opaque names and are not
    copied again. A re-run (a redelivered job) leaves one set of rows.

    A crash mid-import rolls the rows back, but the files it had already
    copied into the default storage stay there: orphans under opaque names
    that no row references (never shown, never listed). That is accepted: the
    re-run copies fresh files for the rows it creates.

    ``ModelVariant.checkpoint`` is the ``pipeline`` storage name of the
    checkpoint (``<slug>/variants/<label>.pt``), readable from any host.
    """
    family.class_names = list(manifest["class_names"])
    family.target_layer = manifest.get("target_layer", "")
    family.save(update_fields=["class_names", "target_layer", "updated_at"])

    variants: dict[str, ModelVariant] = {}
    for row in manifest["variants"]:
        checkpoint = row.get("checkpoint")
        variant, _ = ModelVariant.objects.update_or_create(
            family=family,
            label=row["label"],
            defaults={
                "cpr_target": float(row["cpr_target"]),
                "cpr_measured": float(row["cpr_measured"]),
                "conv_sparsity": float(row["conv_sparsity"]),
                "train_accuracy": row.get("train_accuracy"),
                "val_accuracy": row.get("val_accuracy"),
                "test_accuracy": row.get("test_accuracy"),
                "checkpoint": pipeline_storage_name(family, checkpoint) if checkpoint else "",
                "checkpoint_sha256": row.get("checkpoint_sha256", ""),
                "details": {k: row[k] for k in ("per_layer", "timings", "schedule") if k in row},
            },
        )
        variants[variant.label] = variant

    existing_images = {img.key: img for img in family.images.all()}
    images: dict[str, SourceImage] = {}
    for row in manifest["images"]:
        image = existing_images.get(row["key"])
        if image is None:
            image = SourceImage(family=family, key=row["key"])
            image.file = copy_into_storage(
                source=workdir / row["file"], name=opaque_name(prefix="img")
            )
            if row.get("mask"):
                image.mask_file = copy_into_storage(
                    source=workdir / row["mask"], name=opaque_name(prefix="mask")
                )
        image.class_index = int(row["class_index"])
        image.class_name = family.class_names[image.class_index]
        image.split = row.get("split", "test")
        image.save()
        images[image.key] = image

    existing_stimuli = {
        (s.image_id, s.variant_id, s.kind, s.method, s.catch): s
        for s in Stimulus.objects.filter(variant__family=family)
    }
    for row in manifest["stimuli"]:
        image = images[row["image_key"]]
        variant = variants[row["variant"]]
        method = row.get("method", "gradcam")
        catch = row.get("catch") or ""
        stimulus = existing_stimuli.get((image.pk, variant.pk, row["kind"], method, catch))
        if stimulus is None:
            stimulus = Stimulus(
                image=image, variant=variant, kind=row["kind"], method=method, catch=catch
            )
            # Catch stimuli share the prefix and the random name of real ones: no URL tells.
            stimulus.file = copy_into_storage(
                source=workdir / row["file"], name=opaque_name(prefix="s")
            )
        stimulus.predicted_class = int(row["predicted_class"])
        stimulus.is_blank = bool(row.get("blank", False))
        stimulus.metrics = row.get("metrics") or {}
        stimulus.provenance = row.get("provenance") or {}
        stimulus.save()
    return family
