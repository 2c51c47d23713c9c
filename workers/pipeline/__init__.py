"""The pipeline contract the Django side codes against.

    cfg = PipelineConfig.from_dict(study.pipeline_config)
    for step in pipeline_steps(cfg):
        run_step(cfg, workdir, step, progress=...)      # idempotent, resumable
    manifest = load_manifest(workdir)

or simply ``run_pipeline(cfg, workdir, progress=...)``. Steps, in order::

    data, train, prune:<cpr>..., select, attribute:<label>..., metrics, manifest

Idempotency: a step whose done-marker exists returns its stored summary
without recomputing; a killed job resumes at its first unfinished step, and a
finished CPR is never redone (pruning steps chain through checkpoints on
disk). Paths in summaries and the manifest are relative to ``workdir``. An
``attribute`` marker from before catch stimuli were rendered counts as
unfinished (it is redone with the metrics and manifest), so re-running an
older family's pipeline adds its catch stimuli.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from workers.pipeline.attribute import step_attribute
from workers.pipeline.config import DATASETS, PipelineConfig, cpr_label
from workers.pipeline.context import RunContext
from workers.pipeline.manifest import build_manifest, load_manifest
from workers.pipeline.state import (
    bind_config,
    marker_path,
    read_marker,
    write_json,
    write_marker,
)
from workers.pipeline.steps import (
    step_data,
    step_metrics,
    step_prune,
    step_select,
    step_train,
)

StepProgress = Callable[[float, str], None]
PipelineProgress = Callable[[str, float, str], None]

# Relative cost of steps, for the overall progress fraction only.
_WEIGHTS = {"data": 1.0, "train": 6.0, "prune": 2.0, "select": 0.5, "attribute": 1.0,
            "metrics": 0.1, "manifest": 0.1}  # fmt: skip


def pipeline_steps(cfg: PipelineConfig) -> list[str]:
    """Ordered step names for ``cfg``."""
    return (
        ["data", "train"]
        + [f"prune:{cpr_label(c)[3:]}" for c in cfg.cprs]
        + ["select"]
        + [f"attribute:{label}" for label in cfg.variant_labels]
        + ["metrics", "manifest"]
    )


def _noop(_f: float, _m: str) -> None:
    return None


def _outdated(step: str, summary: dict) -> bool:
    """An ``attribute`` marker written before catch stimuli were rendered (no ``catch`` key)."""
    return step.startswith("attribute:") and "catch" not in summary


def run_step(
    cfg: PipelineConfig, workdir: Path, step: str, *, progress: StepProgress | None = None
) -> dict:
    """Run one step (or return its stored summary if already done) -> its summary dict.

    Preconditions: the steps before it in :func:`pipeline_steps` are done
    (``RuntimeError`` otherwise). Raises ``ValueError`` for an unknown step or
    a work directory bound to another config.
    """
    workdir = Path(workdir)
    steps = pipeline_steps(cfg)
    if step not in steps:
        raise ValueError(f"unknown step {step!r}; this config has {steps}")
    workdir.mkdir(parents=True, exist_ok=True)
    bind_config(workdir, cfg)
    done = read_marker(workdir, step)
    if done is not None and _outdated(step, done["summary"]):
        # Rendered before catch stimuli existed: redo it and everything built on it.
        for stale in (step, "metrics", "manifest"):
            marker_path(workdir, stale).unlink(missing_ok=True)
        done = None
    if done is not None:
        return done["summary"]
    missing = [s for s in steps[: steps.index(step)] if read_marker(workdir, s) is None]
    if missing:
        raise RuntimeError(f"step {step!r} needs {missing} first")
    report = progress or _noop
    (workdir / "variants").mkdir(exist_ok=True)
    ctx = RunContext(cfg=cfg, workdir=workdir)
    t0 = time.perf_counter()
    kind, _, arg = step.partition(":")
    if kind == "data":
        summary = step_data(ctx, report)
    elif kind == "train":
        summary = step_train(ctx, report)
    elif kind == "prune":
        cpr = next(c for c in cfg.cprs if cpr_label(c) == f"cpr{arg}")
        summary = step_prune(ctx, cpr, report)
    elif kind == "select":
        summary = step_select(ctx, report)
    elif kind == "attribute":
        summary = step_attribute(ctx, arg, report)
    elif kind == "metrics":
        summary = step_metrics(ctx, report)
    else:
        summary = build_manifest(cfg, workdir, steps)
        write_json(workdir / "manifest.json", summary)
    summary = dict(summary)
    summary.setdefault("seconds", time.perf_counter() - t0)
    write_marker(workdir, step, summary)
    report(1.0, f"{step} done")
    stored = read_marker(workdir, step)
    assert stored is not None
    return stored["summary"]  # the JSON form, exactly what a later call returns


def run_pipeline(
    cfg: PipelineConfig, workdir: Path, *, progress: PipelineProgress | None = None
) -> dict:
    """Run every step (finished ones are skipped) and return the manifest dict.

    ``progress(step, overall_fraction_0_1, message)``.
    """
    steps = pipeline_steps(cfg)
    weights = [_WEIGHTS[s.partition(":")[0]] for s in steps]
    total = sum(weights)
    before = 0.0
    for step, w in zip(steps, weights, strict=True):
        base = before

        def step_progress(
            f: float, msg: str, _s: str = step, _b: float = base, _w: float = w
        ) -> None:
            if progress:
                progress(_s, min(1.0, (_b + _w * max(0.0, min(1.0, f))) / total), msg)

        run_step(cfg, workdir, step, progress=step_progress)
        before += w
    return load_manifest(workdir)


__all__ = [
    "DATASETS",
    "PipelineConfig",
    "cpr_label",
    "load_manifest",
    "pipeline_steps",
    "run_pipeline",
    "run_step",
]
