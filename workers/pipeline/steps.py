"""Step implementations. Each returns a JSON-ready summary that becomes its marker.

Steps only communicate through files in the work directory (checkpoints,
``dataset_index.json``, markers), so any step can run in a fresh process after
a crash. Every step seeds torch from the config (plus a per-step offset), so
re-running a step gives the same result.
"""

from __future__ import annotations

import importlib.metadata
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from workers.data import (
    generate_dataset,
    index_image_folder,
    index_imagenette,
    load_masks,
)
from workers.models import build_model, to_device
from workers.pipeline.config import PipelineConfig, cpr_label
from workers.pipeline.context import RunContext
from workers.pipeline.state import read_marker, write_json
from workers.pruning import (
    conv_cpr,
    layer_report,
    load_checkpoint,
    prune_to_cpr,
    retrain_after_pruning,
    save_checkpoint,
    scope_cpr,
)
from workers.render import (
    resize_for_display,
    save_png,
)
from workers.selection import select_images
from workers.training import evaluate, predict, train_model

StepProgress = Callable[[float, str], None]


def versions() -> dict[str, str]:
    out = {}
    for pkg in ("torch", "torchvision", "captum", "numpy", "pillow", "torch-pruning"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def _seed(cfg: PipelineConfig, offset: int) -> None:
    torch.manual_seed(cfg.seed * 7919 + offset)


def _accuracies(ctx: RunContext, model: torch.nn.Module) -> dict[str, float]:
    pp, nw = ctx.preprocessing, ctx.cfg.num_workers
    return {
        f"{split}_accuracy": evaluate(model, ctx.dataset(split), preprocessing=pp, num_workers=nw)
        for split in ("train", "val", "test")
    }


# --- data ---------------------------------------------------------------------------------
def step_data(ctx: RunContext, progress: StepProgress) -> dict:
    cfg = ctx.cfg
    progress(0.0, f"preparing {cfg.dataset} data")
    if cfg.dataset == "generated":
        root = Path(cfg.data_root) if cfg.data_root else ctx.workdir / "data"
        index = generate_dataset(root=root, config=cfg.generated_config())
    elif cfg.dataset == "imagenette":
        index = index_imagenette(
            root=Path(str(cfg.data_root)), display_names=dict(cfg.display_names),
            test_fraction=cfg.test_fraction, seed=cfg.seed,
        )  # fmt: skip
    else:
        index = index_image_folder(
            root=Path(str(cfg.data_root)), test_fraction=cfg.test_fraction, seed=cfg.seed
        )
    for split in ("train", "val", "test"):
        if not index.splits.get(split):
            raise ValueError(f"dataset has no usable {split} images")
    index.save(ctx.index_path)
    return {
        "class_names": index.class_names,
        "counts": index.counts(),
        "source": index.source,
        "skipped_images": [{"path": s.path, "reason": s.reason} for s in index.skipped],
    }


# --- train --------------------------------------------------------------------------------
def _variant_summary(
    ctx: RunContext, model: torch.nn.Module, *, label: str, cpr_target: float, sha: str,
    timings: dict, extra: dict | None = None,
) -> dict:  # fmt: skip
    t0 = time.perf_counter()
    accuracies = _accuracies(ctx, model)
    timings = timings | {"eval_s": time.perf_counter() - t0}
    report = layer_report(model, ctx.cfg.prune_scope)
    conv_rows = [r for r in report if r.kind == "conv"]
    dense = sum(r.total for r in conv_rows)
    left = sum(r.remaining for r in conv_rows)
    return {
        "label": label,
        "cpr_target": float(cpr_target),
        "cpr_measured": conv_cpr(model),
        "cpr_scope": ctx.cfg.prune_scope,
        "cpr_measured_in_scope": scope_cpr(model, ctx.cfg.prune_scope),
        "conv_sparsity": 1.0 - left / dense if dense else 0.0,
        **accuracies,
        "checkpoint": f"variants/{label}.pt",
        "checkpoint_sha256": sha,
        "per_layer": [r.to_dict() for r in report],
        "timings": timings,
        **(extra or {}),
    }


def step_train(ctx: RunContext, progress: StepProgress) -> dict:
    cfg = ctx.cfg
    _seed(cfg, 1)
    model = build_model(
        arch=cfg.architecture, num_classes=len(ctx.index.class_names), pretrained=cfg.pretrained,
        weights_dir=Path(cfg.weights_dir) if cfg.weights_dir else None,
    )  # fmt: skip
    model = to_device(model, ctx.device)
    t0 = time.perf_counter()
    result = train_model(
        model, train=ctx.dataset("train"), val=ctx.dataset("val"),
        preprocessing=ctx.preprocessing, config=cfg.train_config(),
        progress=lambda f, m: progress(0.9 * f, m),
    )  # fmt: skip
    if result.rewind_state is not None:
        torch.save(result.rewind_state, ctx.workdir / "variants" / "rewind.pt")
    progress(0.92, "evaluating")
    t1 = time.perf_counter()
    sha = save_checkpoint(
        model, ctx.checkpoint_path("cpr1"), arch=cfg.architecture,
        num_classes=len(ctx.index.class_names), meta={"label": "cpr1", "cpr": 1.0},
    )  # fmt: skip
    return _variant_summary(
        ctx, model, label="cpr1", cpr_target=1.0, sha=sha,
        timings={"train_s": t1 - t0},
        extra={"epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
               "history": result.history},
    )  # fmt: skip


# --- prune --------------------------------------------------------------------------------
def step_prune(ctx: RunContext, cpr: float, progress: StepProgress) -> dict:
    cfg = ctx.cfg
    i = cfg.cprs.index(cpr)
    prev = "cpr1" if i == 0 else cpr_label(cfg.cprs[i - 1])
    label = cpr_label(cpr)
    _seed(cfg, 100 + i)
    model, _ = load_checkpoint(ctx.checkpoint_path(prev), map_location=ctx.device)
    t0 = time.perf_counter()
    crop = ctx.preprocessing.crop
    prune_to_cpr(
        model, cpr, scope=cfg.prune_scope, method=cfg.prune_method,
        example_input=torch.zeros(1, 3, crop, crop, device=ctx.device),
    )  # fmt: skip
    t1 = time.perf_counter()
    # torch.nn.utils.prune flattens weights with .view: prune in the checkpoint's
    # (contiguous) layout, then retrain in the device's fastest one.
    model = to_device(model, ctx.device)
    progress(0.1, f"pruned to CPR {cpr:g}; retraining ({cfg.schedule})")
    rewind = None
    if cfg.schedule == "lottery":
        rewind = torch.load(ctx.workdir / "variants" / "rewind.pt", map_location=ctx.device,
                            weights_only=True)  # fmt: skip
    result = retrain_after_pruning(
        model, schedule=cfg.schedule_config(i), train=ctx.dataset("train"),
        val=ctx.dataset("val"), preprocessing=ctx.preprocessing, rewind_state=rewind,
        progress=lambda f, m: progress(0.1 + 0.8 * f, m),
    )  # fmt: skip
    t2 = time.perf_counter()
    sha = save_checkpoint(
        model, ctx.checkpoint_path(label), arch=cfg.architecture,
        num_classes=len(ctx.index.class_names), meta={"label": label, "cpr": cpr},
    )  # fmt: skip
    summary = _variant_summary(
        ctx, model, label=label, cpr_target=cpr, sha=sha,
        timings={"prune_s": t1 - t0, "retrain_s": t2 - t1},
        extra={"parent": prev, "prune_method": cfg.prune_method, "schedule": cfg.schedule,
               "epochs_run": result.epochs_run, "history": result.history},
    )  # fmt: skip
    if cfg.prune_method != "structured":
        achieved = summary["cpr_measured_in_scope"]
        if abs(achieved / cpr - 1) > 1e-3:  # masks must survive retraining exactly
            raise RuntimeError(f"CPR drifted to {achieved} during retraining (target {cpr})")
    return summary


# --- select -------------------------------------------------------------------------------
def key_file(key: str) -> str:
    return key.replace("\\", "_") + ".png"


def step_select(ctx: RunContext, progress: StepProgress) -> dict:
    cfg = ctx.cfg
    test = ctx.index.splits["test"]
    data = ctx.dataset("test")
    preds = {}
    for j, label in enumerate(cfg.variant_labels):
        model = ctx.load_variant(label)
        preds[label], labels = predict(model, data, preprocessing=ctx.preprocessing,
                                       num_workers=cfg.num_workers)  # fmt: skip
        progress((j + 1) / (len(cfg.variant_labels) + 1), f"predicted test set with {label}")
    sel = select_images(
        keys=[r.key for r in test], labels=labels, predictions=preds,
        per_class=cfg.images_per_class, num_classes=len(ctx.index.class_names), seed=cfg.seed,
    )  # fmt: skip
    if not sel.indices:
        accs = {k: float((p == labels).float().mean()) for k, p in preds.items()}
        raise RuntimeError(
            "no test image is classified correctly by every variant "
            f"(test accuracies {accs}); train longer or choose other CPRs"
        )
    records = [test[i] for i in sel.indices]
    images, _ = ctx.images(records)
    masks = load_masks(records, ctx.preprocessing)
    size = ctx.display_size
    maps0 = torch.zeros(images.shape[0], *images.shape[-2:])
    disp, _ = resize_for_display(images, maps0, size=size)
    out = []
    for k, rec in enumerate(records):
        file = f"images/{key_file(rec.key)}"
        save_png(ctx.workdir / file, disp[k].permute(1, 2, 0).numpy())
        mask_file = None
        if masks is not None:
            m = torch.nn.functional.interpolate(
                masks[k][None, None].float(), size=(size, size), mode="nearest"
            )[0, 0]
            mask_file = f"masks/{key_file(rec.key)}"
            save_png(ctx.workdir / mask_file, (m.numpy() * 255).astype(np.uint8))
        out.append({"key": rec.key, "class_index": rec.label, "split": rec.split,
                    "file": file, "mask": mask_file, "source": rec.path})  # fmt: skip
    all_correct = int(torch.stack([p == labels for p in preds.values()]).all(0).sum())
    return {
        "images": out,
        "candidates_correct_everywhere": all_correct,
        "shortfall": {ctx.index.class_names[c]: n for c, n in sel.shortfall.items()},
        "display_size": size,
    }


# --- metrics ------------------------------------------------------------------------------
def step_metrics(ctx: RunContext, progress: StepProgress) -> dict:
    """Mean of each metric per (variant, method) over real heat stimuli (one per map)."""
    table: dict[str, dict[str, dict[str, float | None]]] = {}
    for label in ctx.cfg.variant_labels:
        marker = read_marker(ctx.workdir, f"attribute:{label}")
        assert marker is not None
        per_method: dict[str, dict[str, list[float]]] = {}
        for s in marker["summary"]["stimuli"]:
            if s["kind"] != "heat" or s.get("catch"):
                continue
            for k, v in s["metrics"].items():
                per_method.setdefault(s["method"], {}).setdefault(k, [])
                if v is not None:
                    per_method[s["method"]][k].append(v)
        table[label] = {
            m: {k: (float(np.mean(v)) if v else None) for k, v in ks.items()}
            for m, ks in per_method.items()
        }
    progress(1.0, "metrics aggregated")
    write_json(ctx.workdir / "metrics.json", table)
    return {"per_variant": table}
