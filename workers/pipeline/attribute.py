"""The ``attribute:<label>`` step: maps, metrics and rendered stimuli for one variant.

One model load per step; every batch goes through attribution, metrics and
rendering on the device, and only uint8 images come back to the host (STYLE 9).
Maps are scored at model input resolution (masks resized with the same
geometry); stimuli are rendered at the display size (image and map resized
bilinearly), so the occlusion share is exact in the image raters see.

Besides the real maps, each image x method gets *catch* stimuli for quality
checks (no metrics): ``rot180`` for both kinds, the saliency map flipped in
both spatial dimensions and rendered over the upright photo exactly like a
real map (it looks real but points at the wrong places), and ``light`` for
occlusion, a real map hiding only ``cfg.catch_hidden`` of the photo (the class
is obvious). They are rendered in the same batches, at the same size, into the
same PNG encoding; their work files sit under ``stimuli/<label>/<method>/catch/``
but the import copies every stimulus to an opaque name, so nothing a rater can
see tells a catch from a real map.
"""

from __future__ import annotations

import math

import torch

from workers.attribution import ATTRIBUTION_METHODS, LAYER_METHODS, RESULT_METHODS
from workers.data import load_masks
from workers.metrics import (
    curve_area,
    deletion_curve,
    gini,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
)
from workers.models import default_target_layer, module_name
from workers.pipeline.context import RunContext
from workers.pipeline.state import read_marker
from workers.pipeline.steps import StepProgress, key_file, versions
from workers.render import (
    COLORMAP_NAME,
    heatmap_batch,
    is_blank,
    occlusion_batch,
    resize_for_display,
    save_png,
)

# (kind, catch) of every stimulus rendered per image and method; catch "" is the real map.
RENDERED: tuple[tuple[str, str], ...] = (
    ("heat", ""),
    ("occlusion", ""),
    ("heat", "rot180"),
    ("occlusion", "rot180"),
    ("occlusion", "light"),
)
CATCH_KINDS: tuple[str, ...] = ("rot180", "light")


def render_stimuli(
    d_img: torch.Tensor, d_maps: torch.Tensor, *, alpha: float, hidden: float,
    catch_hidden: float, fill: tuple[int, int, int],
) -> dict[tuple[str, str], torch.Tensor]:  # fmt: skip
    """Every stimulus of :data:`RENDERED` for a batch, on the maps' device.

    ``d_img`` uint8 (B, 3, S, S) and ``d_maps`` (B, S, S) in [0, 1] at display
    size -> {(kind, catch): uint8 (B, S, S, 3)}.
    """
    flipped = d_maps.flip(-2, -1)  # (B, S, S): the map rotated 180 degrees
    return {
        ("heat", ""): heatmap_batch(d_img, d_maps, alpha=alpha),
        ("occlusion", ""): occlusion_batch(d_img, d_maps, hidden=hidden, fill=fill),
        ("heat", "rot180"): heatmap_batch(d_img, flipped, alpha=alpha),
        ("occlusion", "rot180"): occlusion_batch(d_img, flipped, hidden=hidden, fill=fill),
        ("occlusion", "light"): occlusion_batch(d_img, d_maps, hidden=catch_hidden, fill=fill),
    }


def stimulus_file(label: str, method: str, kind: str, catch: str, key: str) -> str:
    """Work-directory path of a stimulus (never shown to raters: the import renames it)."""
    sub = kind if not catch else f"catch/{catch}-{kind}"
    return f"stimuli/{label}/{method}/{sub}/{key_file(key)}"


# --- attribute ----------------------------------------------------------------------------
def step_attribute(ctx: RunContext, label: str, progress: StepProgress) -> dict:
    cfg = ctx.cfg
    sel = read_marker(ctx.workdir, "select")
    if sel is None:
        raise RuntimeError("attribute step needs the select step")
    chosen = sel["summary"]["images"]
    by_key = {r.key: r for r in ctx.index.splits["test"]}
    records = [by_key[c["key"]] for c in chosen]
    variant = read_marker(ctx.workdir, "train" if label == "cpr1" else f"prune:{label[3:]}")
    assert variant is not None
    vs = variant["summary"]
    model = ctx.load_variant(label)
    layer = default_target_layer(model)
    layer_name = module_name(model, layer)
    images_u8, _ = ctx.images(records)  # (N, 3, H, W) uint8, CPU
    masks = load_masks(records, ctx.preprocessing)
    size = ctx.display_size
    vers = versions()
    stimuli: list[dict] = []
    bs = cfg.attribution_batch_size
    n_jobs = len(cfg.methods) * math.ceil(len(records) / bs)
    done = 0
    for start in range(0, len(records), bs):
        u8 = images_u8[start : start + bs].to(ctx.device)
        x = ctx.preprocessing.normalize(u8)  # (B, 3, H, W)
        mk = masks[start : start + bs].to(ctx.device) if masks is not None else None
        pred: torch.Tensor | None = None  # the variant's predictions, one pass per batch
        for method in cfg.methods:
            if pred is None and method in RESULT_METHODS:
                res = RESULT_METHODS[method](model, x, layer=layer)  # explains the prediction
                pred, maps = res.targets, res.maps
            else:
                if pred is None:
                    with torch.no_grad():
                        pred = model(x).argmax(1)  # (B,)
                maps = ATTRIBUTION_METHODS[method](model, x, targets=pred, layer=layer)
            # maps: (B, H, W) in [0, 1]
            metrics = {"gini": gini(maps).cpu()}
            if mk is not None:
                metrics["rma"] = relevance_mass_accuracy(maps, mk).cpu()
                metrics["rra"] = relevance_rank_accuracy(maps, mk).cpu()
            if cfg.deletion_steps > 0:
                fr, probs = deletion_curve(model, x, maps, targets=pred, steps=cfg.deletion_steps,
                                           baseline=cfg.deletion_baseline, seed=cfg.seed)  # fmt: skip
                metrics["deletion_auc"] = curve_area(fr, probs)
            d_img, d_maps = resize_for_display(u8, maps, size=size)
            on_device = render_stimuli(
                d_img,
                d_maps,
                alpha=cfg.alpha,
                hidden=cfg.hidden,
                catch_hidden=cfg.catch_hidden,
                fill=cfg.occlusion_fill,
            )
            rendered = {k: v.cpu().numpy() for k, v in on_device.items()}  # uint8 only
            maps_cpu = maps.detach().cpu()
            for b in range(u8.shape[0]):
                rec = records[start + b]
                blank = is_blank(maps_cpu[b])
                for (kind, catch), arr in rendered.items():
                    file = stimulus_file(label, method, kind, catch, rec.key)
                    save_png(ctx.workdir / file, arr[b])
                    hidden = cfg.catch_hidden if catch == "light" else cfg.hidden
                    row = {
                        "image_key": rec.key, "variant": label, "kind": kind, "method": method,
                        "file": file, "predicted_class": int(pred[b]), "blank": blank,
                        "metrics": {} if catch else {k: float(v[b]) for k, v in metrics.items()},
                        "provenance": {
                            "checkpoint_sha256": vs["checkpoint_sha256"],
                            "cpr": vs["cpr_target"], "cpr_measured": vs["cpr_measured"],
                            "method": method,
                            "layer": layer_name if method in LAYER_METHODS else None,
                            "colormap": COLORMAP_NAME, "alpha": cfg.alpha, "hidden": hidden,
                            "occlusion_fill": list(cfg.occlusion_fill),
                            "display_size": size,
                            "preprocessing": ctx.preprocessing.describe(),
                            "seed": cfg.seed, "versions": vers,
                        },
                    }  # fmt: skip
                    if catch:
                        row["catch"] = catch
                        row["provenance"]["catch"] = catch
                    stimuli.append(row)
            done += 1
            progress(done / n_jobs, f"{label}: {method} {start + u8.shape[0]}/{len(records)}")
    return {"variant": label, "layer": layer_name, "catch": list(CATCH_KINDS), "stimuli": stimuli}
