"""The live monitor in real Chromium at 1280 x 800: it updates by itself while a rater answers.

A scripted rater answers through the services (no browser of theirs); the
researcher's page, opened once, shows the new answers within a poll or two
without a reload (a marker set on ``window`` survives), and fits the window.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import include, path

from apps.studies.models import Slot
from tests.studies.helpers import answer_one, join, launched_study, next_task

urlpatterns = [
    path("", include("apps.studies.monitor_urls")),
    path("", include("config.urls")),
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.urls(__name__),
]


def _shots_dir() -> Path:
    out = Path(os.environ.get("XAI_ARTIFACTS_DIR") or "bench-out") / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    return out


def _login(page, live_server) -> None:
    user = get_user_model().objects.create_superuser("res", "res@example.invalid", "pw-123456")
    client = Client()
    client.force_login(user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )


def _answers_cell(page, slug: str) -> str:
    return page.locator(f'tr[data-experiment="{slug}"] td').first.inner_text()


def test_the_monitor_updates_by_itself_while_a_rater_answers(live_server, page):
    study = launched_study(images_per_class=1, tasks_per_rater=3)
    pw = study.experiments.get(slug="pw")
    n_slots = Slot.objects.filter(experiment=pw).count()
    _login(page, live_server)
    page.set_viewport_size({"width": 1280, "height": 800})

    page.goto(f"{live_server.url}/researcher/studies/{study.pk}/monitor/")
    page.wait_for_selector('tr[data-experiment="pw"]')
    assert _answers_cell(page, "pw") == f"0 / {n_slots}"
    page.evaluate("window.__notReloaded = true")
    updates = int(page.locator("#monitor").get_attribute("data-updates"))

    # a rater joins and answers twice through the services
    rater = join(pw)
    answer_one(rater, response_ms=1500)
    answer_one(rater, response_ms=1500)
    page.wait_for_function(
        "([t]) => document.querySelector('tr[data-experiment=\"pw\"] td').textContent === t",
        arg=[f"2 / {n_slots}"],
        timeout=15_000,
    )
    assert page.evaluate("window.__notReloaded") is True
    assert int(page.locator("#monitor").get_attribute("data-updates")) > updates
    row = page.locator(f'tr[data-rater="{rater.rater.public_id}"]')
    assert row.locator("td").nth(1).inner_text() == "browser"  # plain link: no worker id
    assert row.locator("td").nth(4).inner_text() == "2 / 3"
    on_screen = page.locator('tr[data-experiment="pw"] td').nth(3).inner_text()
    assert on_screen == "1"  # the third task is on the rater's screen

    # the filters narrow the table (server side, on the next poll)
    other = join(study.experiments.get(slug="fc"))
    next_task(other)
    page.select_option("select[name=experiment]", "fc")
    page.wait_for_function(
        "([id]) => { const rows = document.querySelectorAll('tr[data-rater]');"
        " return rows.length === 1 && rows[0].dataset.rater === id; }",
        arg=[str(other.rater.public_id)],
    )
    page.fill("input[name=q]", "no-such-rater")
    page.wait_for_selector("text=No raters match.")

    # it fits 1280 px: nothing scrolls sideways
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1280, width
    page.screenshot(path=str(_shots_dir() / "monitor-1280x800.png"), full_page=True)
