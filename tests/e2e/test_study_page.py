"""The study page in real headless Chromium at 1280x800: preset, preview, launch, monitor, results.

A researcher logs in, adds the paper's Experiment 1 from a preset (no JSON),
opens the staff preview of the experiment from the page, launches the study
through the confirmation page and finds the rater link on the study page; the
live monitor on the page follows a scripted rater's answers without a reload,
and the results open from the page (computed off-request).
Screenshots go to ``$XAI_ARTIFACTS_DIR`` or ``bench-out/screenshots/`` (``study-page-*``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from apps.studies.models import Study
from apps.studies.services import assignment_next, response_submit, study_create
from tests.factories import family_with_stimuli
from tests.studies.helpers import join


def _answer_like_the_page(rater) -> bool:
    """Answer what the rater loop gives next, as the task page would: a task (``True``)
    or an attention check or probe (``False``: no answer slot filled)."""
    step = assignment_next(participation_id=rater.pk)
    item = step.assignment or step.check
    assert item is not None, f"nothing to answer: {step.state}"
    response_submit(
        participation_id=rater.pk, assignment_id=str(item.public_id), choice=2, response_ms=1500
    )
    return step.assignment is not None


def _shots_dir() -> Path:
    root = Path(os.environ.get("XAI_ARTIFACTS_DIR") or "bench-out")
    out = root / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_design_from_a_preset_preview_and_launch(live_server, page, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True  # laptop mode: the results run in a thread
    family = family_with_stimuli(slug="fam-e2e-page", images_per_class=2)
    study = study_create(name="Browser study", slug="browser-study", family=family, seed=1)
    get_user_model().objects.create_superuser("res", "res@example.invalid", "pw-123456")
    shots = _shots_dir()
    page.set_viewport_size({"width": 1280, "height": 800})

    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "res")
    page.fill("#id_password", "pw-123456")
    page.click("input[type=submit]")
    home = f"{live_server.url}/admin/studies/study/{study.pk}/change/"
    page.goto(home)
    page.wait_for_selector("#study-home")

    # design from a preset
    page.click("#add-preset")
    page.wait_for_selector("#preset-form")
    assert "CPR 8" in page.inner_text("#preset-form") or "cpr8" in page.inner_text("#preset-form")
    page.check("input[name=preset][value=experiment1]")
    page.screenshot(path=str(shots / "study-page-preset-1280x800.png"), full_page=True)
    page.click("#add-experiments")
    page.wait_for_selector("#study-experiments tr.experiment")
    assert "Added Experiment 1" in page.inner_text("body")
    assert "CPR 4 vs CPR 8" in page.inner_text("#study-experiments")
    assert page.inner_text("#design-summary .n-tasks") == "66"
    page.screenshot(path=str(shots / "study-page-draft-1280x800.png"), full_page=True)

    # the preview opens in a new tab
    with page.context.expect_page() as opened:
        page.click("#study-experiments a.preview-link")
    preview = opened.value
    preview.wait_for_load_state()
    assert "/preview/" in preview.url
    preview.wait_for_selector("#preview-banner")
    preview.screenshot(path=str(shots / "study-page-preview-1280x800.png"))
    preview.close()

    # launch through the confirmation page
    page.click("#launch")
    page.wait_for_selector("#confirm-launch")
    assert "66 tasks" in page.inner_text("#confirm-launch")
    page.screenshot(path=str(shots / "study-page-confirm-launch-1280x800.png"))
    page.click("#confirm")
    page.wait_for_selector("a.rater-link")
    study.refresh_from_db()
    assert study.status == Study.Status.LIVE
    code = study.experiments.get().code
    assert page.get_attribute("a.rater-link", "href").endswith(f"/r/{code}/")
    assert page.is_visible("#pause") and page.is_visible("#publish")
    width, scroll = page.evaluate("() => [innerWidth, document.documentElement.scrollWidth]")
    assert scroll <= width, f"the study page scrolls sideways ({scroll} > {width})"
    page.screenshot(path=str(shots / "study-page-live-1280x800.png"), full_page=True)

    # a scripted rater answers: the monitor on the study page follows without a reload
    experiment = study.experiments.get()
    n_slots = experiment.tasks.count() * experiment.answers_per_task
    page.wait_for_selector(f'tr[data-experiment="{experiment.slug}"]')
    page.evaluate("window.__notReloaded = true")
    rater = join(experiment)
    answered = 0
    while answered < 3:  # three tasks (checks the rater meets on the way are answered too)
        answered += _answer_like_the_page(rater)
    page.wait_for_function(
        '([slug, t]) => document.querySelector(`tr[data-experiment="${slug}"] td`)'
        ".textContent === t",
        arg=[experiment.slug, f"3 / {n_slots}"],
        timeout=15_000,
    )
    assert page.evaluate("window.__notReloaded") is True
    page.screenshot(path=str(shots / "study-page-monitor-1280x800.png"), full_page=True)

    # the results, one click away: computed off-request, then shown with the exclusions
    page.click("#results")
    page.wait_for_selector("#exclusions", timeout=60_000)
    page.wait_for_selector("#computing", state="detached", timeout=60_000)
    page.screenshot(path=str(shots / "study-page-results-1280x800.png"), full_page=True)
