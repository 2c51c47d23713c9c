"""Work directory layout, done-markers and atomic JSON.

A step is finished iff its marker ``workdir/steps/<step>.json`` exists. The
marker is written last, atomically (temp file + ``os.replace``), after every
output of the step, so a killed job either finished a step completely or will
redo it; outputs of an unfinished step are simply overwritten. ``config.json``
pins the work directory to one configuration: running a different config in
the same directory is refused rather than mixing results.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from workers.pipeline.config import PipelineConfig


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(jsonable(data), indent=1, allow_nan=False))
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def jsonable(x: Any) -> Any:
    """NaN/inf -> None (strict JSON), tuples -> lists, recursively."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [jsonable(v) for v in x]
    return x


def marker_path(workdir: Path, step: str) -> Path:
    return Path(workdir) / "steps" / (step.replace(":", "__") + ".json")


def read_marker(workdir: Path, step: str) -> dict | None:
    p = marker_path(workdir, step)
    if not p.exists():
        return None
    return read_json(p)


def write_marker(workdir: Path, step: str, summary: dict) -> None:
    write_json(marker_path(workdir, step), {"step": step, "finished_at": time.time(),
                                           "summary": summary})  # fmt: skip


# Knobs that change where/how fast a job runs, never its results: a job may
# resume on another machine (e.g. a GPU worker) without being refused.
EXECUTION_ONLY_KEYS: frozenset[str] = frozenset({"device", "num_workers"})


def bind_config(workdir: Path, cfg: PipelineConfig) -> None:
    """Store ``cfg`` in ``workdir/config.json``, or check it matches the stored one.

    Keys in :data:`EXECUTION_ONLY_KEYS` are not compared. A key missing from the
    stored config (a field added since that run, e.g. ``catch_hidden``) compares
    as its default, so an older work directory resumes under a newer code base.
    """
    path = Path(workdir) / "config.json"
    current = jsonable(cfg.to_dict())
    if path.exists():
        stored = read_json(path)
        defaults = jsonable(PipelineConfig().to_dict())
        diff = sorted(
            k
            for k in set(stored) | set(current)
            if k not in EXECUTION_ONLY_KEYS
            and stored.get(k, defaults.get(k)) != current.get(k, defaults.get(k))
        )
        if diff:
            raise ValueError(
                f"{workdir} belongs to a different pipeline config (differs in {diff})"
            )
        return
    write_json(path, current)
