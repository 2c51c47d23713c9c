"""The ``attribute:<label>`` step: maps, metrics and rendered stimuli for one variant.

One model load per step; every batch goes through attribution, metrics and
rendering on the device, and only uint8 images come back to the host (STYLE 9).
Maps are scored at model input resolution (masks resized with the same
geometry); stimuli are rendered at the display size (image and map resized
bilinearly), so the occlusion share is exact in the image raters see.
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
            rendered = {
                "heat": heatmap_batch(d_img, d_maps, alpha=cfg.alpha).cpu().numpy(),
                "occlusion": occlusion_batch(d_img, d_maps, hidden=cfg.hidden,
                                             fill=cfg.occlusion_fill).cpu().numpy(),
            }  # fmt: skip
            maps_cpu = maps.detach().cpu()
            for b in range(u8.shape[0]):
                rec = records[start + b]
                blank = is_blank(maps_cpu[b])
                for kind, arr in rendered.items():
                    file = f"stimuli/{label}/{method}/{kind}/{key_file(rec.key)}"
                    save_png(ctx.workdir / file, arr[b])
                    stimuli.append({
                        "image_key": rec.key, "variant": label, "kind": kind, "method": method,
                        "file": file, "predicted_class": int(pred[b]), "blank": blank,
                        "metrics": {k: float(v[b]) for k, v in metrics.items()},
                        "provenance": {
                            "checkpoint_sha256": vs["checkpoint_sha256"],
                            "cpr": vs["cpr_target"], "cpr_measured": vs["cpr_measured"],
                            "method": method,
                            "layer": layer_name if method in LAYER_METHODS else None,
                            "colormap": COLORMAP_NAME, "alpha": cfg.alpha, "hidden": cfg.hidden,
                            "occlusion_fill": list(cfg.occlusion_fill),
                            "display_size": size,
                            "preprocessing": ctx.preprocessing.describe(),
                            "seed": cfg.seed, "versions": vers,
                        },
                    })  # fmt: skip
            done += 1
            progress(done / n_jobs, f"{label}: {method} {start + u8.shape[0]}/{len(records)}")
    return {"variant": label, "layer": layer_name, "stimuli": stimuli}
