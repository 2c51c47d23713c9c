from __future__ import annotations

import pytest


@pytest.fixture
def analysis_dispatches(monkeypatch):
    """Record the results page's background runs instead of starting them (list of run ids)."""
    started: list[int] = []
    monkeypatch.setattr("apps.analysis.services._dispatch", lambda run: started.append(run.pk))
    return started


@pytest.fixture
def analysis_inline(monkeypatch):
    """Run the results page's background analysis in the test's thread when it is dispatched
    (on commit: use ``django_capture_on_commit_callbacks(execute=True)``); results go to the
    test's own ``results`` storage (tests/conftest.py points it at a fresh folder)."""
    from apps.analysis import services

    started: list[int] = []

    def run_now(run):
        started.append(run.pk)
        services.analysis_run_execute(study_id=run.study_id, run_id=run.pk)

    monkeypatch.setattr(services, "_dispatch", run_now)
    return started
