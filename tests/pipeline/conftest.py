"""Pipeline tests: jobs run inline unless a test asks for the background thread,
and a stub pipeline (seconds, no torch) for the admin tests."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.factories import write_manifest

STUB_STEPS = ["data", "train", "select", "metrics", "manifest"]


@pytest.fixture(autouse=True)
def _jobs_run_inline(settings):
    """``job_create`` runs an eager job inside the call (these tests read its result
    right after); tests of the admin's background run set it back to ``True``."""
    settings.PIPELINE_RUN_IN_THREAD = False


class StubPipeline:
    """Stands in for ``workers.pipeline``'s steps: each step reports progress, waits
    for ``gate`` when the test holds it, leaves a done-marker (a finished step is
    skipped next time, as the real markers do) and the ``manifest`` step writes a
    small manifest with real PNGs (``tests.factories.write_manifest``)."""

    def __init__(self, step_seconds: float = 0.0) -> None:
        self.step_seconds = step_seconds
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()  # set when a step starts (and waits for the gate)
        self.computed: list[str] = []

    def pipeline_steps(self, cfg) -> list[str]:
        return list(STUB_STEPS)

    def run_step(self, cfg, workdir, step, *, progress=None) -> dict:
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        marker = workdir / f"done-{step.replace(':', '_')}"
        if marker.exists():
            return {}
        self.entered.set()
        assert self.gate.wait(60), "the test never released the stub pipeline"
        for i in range(4):
            if progress:
                progress(i / 4, f"{step} {i}/4")
            time.sleep(self.step_seconds / 4)
        if step == "manifest":
            write_manifest(workdir, class_names=["circle", "square"], images_per_class=1,
                           cprs=[1, 2])  # fmt: skip
        self.computed.append(step)
        marker.write_text("done")
        return {}


@pytest.fixture
def stub_pipeline(monkeypatch) -> StubPipeline:
    import workers.pipeline as pipeline

    stub = StubPipeline()
    monkeypatch.setattr(pipeline, "pipeline_steps", stub.pipeline_steps)
    monkeypatch.setattr(pipeline, "run_step", stub.run_step)
    return stub
