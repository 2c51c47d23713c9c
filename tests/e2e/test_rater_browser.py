"""A rater answers demo tasks in real headless Chromium, with keys and the mouse.

Checks the stored rows (encoded from condition A's view, whatever the side)
and the export: one correct row per answer, nothing lost or repeated across
a reload.
"""

from __future__ import annotations

import csv

import pytest
from django.core.management import call_command

from apps.studies.models import Participation, Response, Slot
from apps.studies.scales import pairwise_encode
from tests.studies.helpers import launched_study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _wait_for_task(page, number: int, target: int) -> None:
    page.wait_for_function(
        "([t]) => document.getElementById('progress-text').textContent === t"
        " && !document.getElementById('stimuli').hidden"
        " && document.querySelectorAll('#options button:not([disabled])').length > 0",
        arg=[f"Task {number} of {target}"],
    )


def test_rater_answers_pairwise_and_forced_choice_tasks_in_the_browser(live_server, page, tmp_path):
    # given a live study: pairwise 5-point and forced choice, 4 tasks per rater, leases
    # of 15 s (the page sends a heartbeat every 5 s)
    study = launched_study(tasks_per_rater=4, lease_seconds=15)
    pairwise = study.experiments.get(slug="pw")
    forced = study.experiments.get(slug="fc")

    # when a rater opens the pairwise link and starts
    page.goto(f"{live_server.url}/r/{pairwise.code}/")
    assert "Which explanation" not in page.content()
    page.check("#consent")
    page.click("#start")
    _wait_for_task(page, 1, 4)
    assert page.locator("#predicted").inner_text() != ""
    page.screenshot(path=str(tmp_path / "pairwise.png"))

    # while they look at the task, the page's heartbeat keeps their lease alive
    participation = Participation.objects.get(experiment=pairwise)
    slot = Slot.objects.get(holder=participation, is_answered=False)
    first_expiry = slot.lease_expires_at
    page.wait_for_timeout(6500)
    slot.refresh_from_db()
    assert slot.holder_id == participation.pk and slot.lease_expires_at > first_expiry

    # they answer with the keyboard: "1" = left clearly more reasonable
    page.keyboard.press("1")
    _wait_for_task(page, 2, 4)
    # a reload shows the same unanswered task, and counts nothing twice
    left_before = page.locator("#left").get_attribute("src")
    page.reload()
    _wait_for_task(page, 2, 4)
    assert page.locator("#left").get_attribute("src") == left_before
    # the mouse: "Right slightly more reasonable", then keys 3 and 5
    page.get_by_role("button", name="Right slightly more reasonable").click()
    _wait_for_task(page, 3, 4)
    page.keyboard.press("3")
    _wait_for_task(page, 4, 4)
    page.keyboard.press("5")
    page.wait_for_url(f"**/r/{pairwise.code}/done/")
    code = page.locator("#completion-code").inner_text()
    assert len(code) == 8
    assert not Slot.objects.filter(holder=participation, is_answered=False).exists()

    # then four responses, encoded from condition A's point of view
    responses = list(
        Response.objects.filter(task__experiment=pairwise)
        .select_related("task")
        .order_by("submitted_at")
    )
    assert [r.choice for r in responses] == [0, 3, 2, 4]
    for response in responses:
        expected = pairwise_encode(
            scale_points=5, choice=response.choice, left_is_a=response.task.left_is_a
        )
        assert response.value == expected
        assert response.response_ms is not None and response.response_ms >= 0

    # when the same browser does the forced-choice experiment
    page.goto(f"{live_server.url}/r/{forced.code}/")
    page.check("#consent")
    page.click("#start")
    _wait_for_task(page, 1, 4)
    page.screenshot(path=str(tmp_path / "forced.png"))
    page.keyboard.press("x")  # I don't know
    _wait_for_task(page, 2, 4)
    page.get_by_role("button", name="triangle").click()
    _wait_for_task(page, 3, 4)
    page.keyboard.press("0")  # tenth class
    _wait_for_task(page, 4, 4)
    page.keyboard.press("1")
    page.wait_for_url(f"**/r/{forced.code}/done/")

    answers = list(
        Response.objects.filter(task__experiment=forced)
        .order_by("submitted_at")
        .values_list("answer", flat=True)
    )
    class_names = study.family.class_names
    assert answers == ["idk", "triangle", class_names[9], class_names[0]]

    # and the export holds exactly one row per answer
    out = tmp_path / "responses.csv"
    call_command("export_responses", study.slug, "--out", str(out))
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8
    assert [row["answer"] for row in rows if row["experiment"] == "fc"] == answers
    assert [row["answer"] for row in rows if row["experiment"] == "pw"] == [
        str(r.value) for r in responses
    ]
    shown = {str(r.task_id): ("a" if r.task.left_is_a else "b") for r in responses}
    assert all(
        row["shown_left"] == shown[row["task_id"]] for row in rows if row["experiment"] == "pw"
    )
