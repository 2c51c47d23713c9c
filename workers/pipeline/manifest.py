"""Manifest assembly: one JSON document describing everything a study needs.

Schema (paths relative to the work directory)::

    {"config", "class_names", "target_layer", "versions",
     "variants": [{label, cpr_target, cpr_measured, conv_sparsity, *_accuracy,
                   checkpoint, checkpoint_sha256, per_layer, timings, ...}],
     "images": [{key, class_index, split, file, mask}],
     "stimuli": [{image_key, variant, kind, method, file, predicted_class, blank,
                  metrics, provenance, catch?}],  # catch: "rot180" | "light", absent if real
     "metrics_summary", "skipped_images", "timings"}
"""

from __future__ import annotations

from pathlib import Path

from workers.pipeline.config import PipelineConfig
from workers.pipeline.state import read_json, read_marker


def build_manifest(cfg: PipelineConfig, workdir: Path, steps: list[str]) -> dict:
    markers = {s: read_marker(workdir, s) for s in steps if s != "manifest"}
    if any(m is None for m in markers.values()):
        raise RuntimeError("manifest needs every other step finished")
    summ = {s: m["summary"] for s, m in markers.items() if m is not None}
    variant_steps = ["train"] + [s for s in steps if s.startswith("prune:")]
    variants = []
    for s in variant_steps:
        v = {k: val for k, val in summ[s].items() if k not in ("history", "seconds")}
        variants.append(v)
    attribute = [s for s in steps if s.startswith("attribute:")]
    from workers.pipeline.steps import versions

    return {
        "config": cfg.to_dict(),
        "class_names": summ["data"]["class_names"],
        "target_layer": summ[attribute[0]]["layer"],
        "versions": versions(),
        "variants": variants,
        "images": [
            {k: img[k] for k in ("key", "class_index", "split", "file", "mask")}
            for img in summ["select"]["images"]
        ],
        "stimuli": [st for s in attribute for st in summ[s]["stimuli"]],
        "metrics_summary": summ["metrics"]["per_variant"],
        "selection": {
            "candidates_correct_everywhere": summ["select"]["candidates_correct_everywhere"],
            "shortfall": summ["select"]["shortfall"],
            "display_size": summ["select"]["display_size"],
        },
        "skipped_images": summ["data"]["skipped_images"],
        "timings": {s: summ[s].get("seconds") for s in summ},
    }


def load_manifest(workdir: Path) -> dict:
    """Read ``workdir/manifest.json`` (written by the ``manifest`` step)."""
    path = Path(workdir) / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: the pipeline has not finished")
    return read_json(path)
