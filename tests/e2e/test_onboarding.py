"""Onboarding in real headless Chromium, on a desktop and on a phone.

A rater who declines consent ends cleanly (nothing stored); a rater goes
consent -> instructions and example -> practice with feedback -> tasks -> the
end page, with nothing scrolling sideways on a 390 px phone. Screenshots go to
``$XAI_ARTIFACTS_DIR`` or ``bench-out/screenshots/`` (``onboarding-*``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from apps.studies.models import CheckItem, Participation, PracticeAnswer, Rater, Response
from tests.studies.test_onboarding import onboarding_study

VIEWPORTS = [(1280, 800), (390, 844)]


def _shots_dir() -> Path:
    root = Path(os.environ.get("XAI_ARTIFACTS_DIR") or "bench-out")
    out = root / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    return out


def _no_sideways_scroll(page) -> None:
    width, scroll = page.evaluate("() => [window.innerWidth, document.documentElement.scrollWidth]")
    assert scroll <= width, f"the page scrolls sideways ({scroll} > {width})"


@pytest.mark.parametrize("width,height", VIEWPORTS)
@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_rater_who_declines_consent_ends_cleanly(live_server, page, width, height):
    study = onboarding_study()
    code = study.experiments.get(slug="pwh").code
    page.set_viewport_size({"width": width, "height": height})
    page.goto(f"{live_server.url}/r/{code}/")
    _no_sideways_scroll(page)
    page.screenshot(
        path=str(_shots_dir() / f"onboarding-consent-{width}x{height}.png"), full_page=True
    )
    # Start without the box ticked: the browser keeps the rater on the page
    page.click("#start")
    assert page.url.rstrip("/").endswith(f"/r/{code}")
    page.click("#decline")
    page.wait_for_selector("#declined")
    assert "Nothing about you has been stored" in page.inner_text("#declined")
    _no_sideways_scroll(page)
    page.screenshot(path=str(_shots_dir() / f"onboarding-declined-{width}x{height}.png"))
    assert not Rater.objects.exists() and not Participation.objects.exists()


@pytest.mark.parametrize("slug", ["pwh", "fc"])
@pytest.mark.parametrize("width,height", VIEWPORTS)
@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_consent_instructions_practice_tasks_done(live_server, page, width, height, slug):
    study = onboarding_study()
    experiment = study.experiments.get(slug=slug)
    code = experiment.code
    shots = _shots_dir()
    tag = f"{slug}-{width}x{height}"
    page.set_viewport_size({"width": width, "height": height})

    # consent, instructions and the worked example on the start page
    page.goto(f"{live_server.url}/r/{code}/")
    assert page.is_visible("#consent-text") and page.is_visible("#instructions")
    assert page.is_visible("#example")
    _no_sideways_scroll(page)
    page.screenshot(path=str(shots / f"onboarding-start-{tag}.png"), full_page=True)
    page.check("#consent")
    page.click("#start")

    # two practice trials with feedback, answered with the keyboard
    for number in (1, 2):
        page.wait_for_selector(f"#practice[data-number='{number}']")
        assert "not counted" in page.inner_text("#practice-progress")
        _no_sideways_scroll(page)
        if number == 1:
            page.screenshot(path=str(shots / f"onboarding-practice-{tag}.png"), full_page=True)
        page.keyboard.press("1")
        page.wait_for_selector("#feedback")
        _no_sideways_scroll(page)
        if number == 1:
            page.screenshot(path=str(shots / f"onboarding-feedback-{tag}.png"), full_page=True)
        page.focus("#next")
        assert page.evaluate("() => document.activeElement.id") == "next"
        page.keyboard.press("Enter")

    # the tasks, then the end page
    target = experiment.tasks_per_rater
    for number in range(1, target + 1):
        page.wait_for_function(
            "([t]) => document.getElementById('progress-text').textContent === t"
            " && document.querySelectorAll('#options button:not([disabled])').length > 0",
            arg=[f"Task {number} of {target}"],
        )
        if number == 1:
            _no_sideways_scroll(page)
            page.screenshot(path=str(shots / f"onboarding-task-{tag}.png"), full_page=True)
        page.locator("#options button:not([disabled])").first.click()
    page.wait_for_url(f"**/r/{code}/done/")
    page.wait_for_selector("#done[data-reason='completed']")
    _no_sideways_scroll(page)
    page.screenshot(path=str(shots / f"onboarding-done-{tag}.png"))

    participation = Participation.objects.get()
    assert participation.consented_at is not None and participation.practice_done == 2
    assert PracticeAnswer.objects.count() == 2 and Response.objects.count() == target


@pytest.mark.parametrize("width,height", VIEWPORTS)
@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_run_with_checks_catch_trials_and_probes_reaches_the_end(
    live_server, page, width, height
):
    """Defaults on: an attention check asks its own question (the rater follows it), a
    probe and catch trials look like tasks, and the progress counts every item."""
    study = onboarding_study(
        tasks_per_rater=6, practice_trials=0, attention_checks=1, probe_percent=20,
        catch_percent=25, images_per_class=2,
    )  # fmt: skip
    experiment = study.experiments.get(slug="pwh")
    code = experiment.code
    page.set_viewport_size({"width": width, "height": height})
    page.goto(f"{live_server.url}/r/{code}/")
    page.check("#consent")
    page.click("#start")
    total = 6 + 1 + 1
    default_question = "Which explanation is more reasonable?"
    instructed = 0
    for number in range(1, total + 1):
        page.wait_for_function(
            "([t]) => document.getElementById('progress-text').textContent === t"
            " && document.querySelectorAll('#options button:not([disabled])').length > 0",
            arg=[f"Task {number} of {total}"],
        )
        question = page.inner_text("#question")
        if question != default_question:
            instructed += 1
            assert question.startswith("For this pair, please choose")
            label = question.split("\u201c", 1)[1].rsplit("\u201d", 1)[0]
            _no_sideways_scroll(page)
            page.screenshot(
                path=str(_shots_dir() / f"attention-check-{width}x{height}.png"), full_page=True
            )
            page.locator("#options button", has_text=label).first.click()
        else:
            page.locator("#options button:not([disabled])").last.click()
    page.wait_for_selector("#done[data-reason='completed']")
    assert instructed == 1
    item = CheckItem.objects.get(kind="attention")
    assert item.choice == item.instructed_choice  # the rater did what the question said
    probe = CheckItem.objects.get(kind="probe")
    assert probe.submitted_at is not None
    assert Response.objects.count() == 6
