"""The pipeline admin in real Chromium at 1280 x 800: run a (stubbed) pipeline
from the family list, watch its progress move without a reload, and the
family and stimulus lists without sideways scrolling. Screenshots go to
``$XAI_ARTIFACTS_DIR`` or ``bench-out/screenshots/``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from apps.pipeline.models import PipelineJob
from apps.pipeline.services import family_create
from tests.factories import family_with_stimuli
from tests.pipeline.conftest import StubPipeline

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NO_SIDEWAYS_SCROLL = """() => {
  const doc = document.documentElement;
  const results = document.querySelector('#changelist .results');
  return {page: doc.scrollWidth - doc.clientWidth,
          table: results ? results.scrollWidth - results.clientWidth : 0};
}"""


def _shots_dir() -> Path:
    out = Path(os.environ.get("XAI_ARTIFACTS_DIR") or "bench-out") / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    return out


def _login(page, live_server) -> None:
    user = get_user_model().objects.create_superuser("adm", "adm@example.invalid", "pw-123456")
    client = Client()
    client.force_login(user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    page.set_viewport_size({"width": 1280, "height": 800})


def test_a_run_shows_live_progress_and_lists_fit_1280(live_server, page, settings, monkeypatch):
    import workers.pipeline as pipeline

    settings.PIPELINE_RUN_IN_THREAD = True
    settings.CELERY_TASK_ALWAYS_EAGER = True  # laptop mode, even where CI sets a broker
    stub = StubPipeline(step_seconds=1.5)
    monkeypatch.setattr(pipeline, "pipeline_steps", stub.pipeline_steps)
    monkeypatch.setattr(pipeline, "run_step", stub.run_step)
    family_with_stimuli(slug="shown", images_per_class=2)
    family = family_create(name="A family with a rather long name to truncate", slug="run-me")
    _login(page, live_server)
    # the family list fits the window
    page.goto(f"{live_server.url}/admin/pipeline/modelfamily/")
    assert page.evaluate(NO_SIDEWAYS_SCROLL) == {"page": 0, "table": 0}
    # when the researcher runs the pipeline for one family
    page.check(f'input[name="_selected_action"][value="{family.pk}"]')
    page.select_option('select[name="action"]', "run_pipeline")
    page.click('button[name="index"]')
    # then the job's page opens and its progress moves without a reload
    page.wait_for_url("**/admin/pipeline/pipelinejob/*/change/")
    page.evaluate("() => { window.__noReload = true; }")
    page.wait_for_function(
        "() => parseFloat(document.querySelector('[data-field=progress]').textContent) > 0"
    )
    first = page.text_content('[data-field="progress"]')
    page.screenshot(path=str(_shots_dir() / "pipeline-admin-job-running-1280.png"))
    page.wait_for_function(
        "([p]) => document.querySelector('[data-field=progress]').textContent !== p", arg=[first]
    )
    page.wait_for_function(
        "() => document.querySelector('.xai-job').dataset.status === 'succeeded'", timeout=60_000
    )
    assert page.evaluate("() => window.__noReload") is True  # the same document all along
    assert page.text_content('[data-field="progress"]') == "100.0%"
    assert page.locator('[data-field="timings"] tr').count() == 5
    page.screenshot(path=str(_shots_dir() / "pipeline-admin-job-done-1280.png"))
    assert PipelineJob.objects.get(family=family).status == "succeeded"
    # and the stimulus list fits the window too
    page.goto(f"{live_server.url}/admin/pipeline/stimulus/")
    assert page.evaluate(NO_SIDEWAYS_SCROLL) == {"page": 0, "table": 0}
    page.screenshot(path=str(_shots_dir() / "pipeline-admin-stimuli-1280.png"))
    page.goto(f"{live_server.url}/admin/pipeline/modelfamily/")
    assert page.evaluate(NO_SIDEWAYS_SCROLL) == {"page": 0, "table": 0}
    page.screenshot(path=str(_shots_dir() / "pipeline-admin-families-1280.png"))
