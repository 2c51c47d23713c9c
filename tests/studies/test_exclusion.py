"""Raters of an earlier study are not admitted to a study that excludes them."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.core.exceptions import ApplicationError
from apps.studies.identity import crowd_identity
from apps.studies.models import Participation, Rater
from apps.studies.services import rater_join
from tests.studies.helpers import join, launched_study

pytestmark = pytest.mark.django_db

WORKER = "A2EARLIER0001"
PID = "5f3e9a1b2c4d6e8f0a1b2c3d"
BROWSER = "b" * 43


@pytest.fixture
def studies():
    """``earlier`` has had an MTurk worker, a Prolific worker and a plain-link browser;
    ``later`` excludes its raters; ``unrelated`` excludes nobody."""
    earlier = launched_study(slug="earlier")
    later = launched_study(slug="later")
    later.exclude_raters_of.add(earlier)
    unrelated = launched_study(slug="unrelated")
    fc = earlier.experiments.get(slug="fc")
    join(fc, source="mturk", worker_id=WORKER, session={"assignmentId": "3A1"})
    join(fc, source="prolific", worker_id=PID, session={"SESSION_ID": PID[::-1]})
    join(fc, browser=BROWSER)
    return earlier, later, unrelated


@pytest.mark.parametrize(
    ("source", "worker_id", "browser"),
    [("mturk", WORKER, None), ("prolific", PID, None), ("link", None, BROWSER)],
)
def test_a_rater_of_an_excluded_study_is_refused_politely(studies, source, worker_id, browser):
    earlier, later, unrelated = studies
    before = Participation.objects.count()
    for experiment in later.experiments.all():
        with pytest.raises(ApplicationError) as err:
            join(experiment, source=source, worker_id=worker_id, browser=browser)
        assert err.value.code == "excluded_earlier_study" and err.value.status_code == 403
        assert err.value.message.startswith("Thank you for your interest.")
        assert "did not take part in an earlier, related study" in err.value.message
    assert Participation.objects.count() == before
    # the exclusion is one-way and per study: elsewhere they are welcome
    join(unrelated.experiments.get(slug="pw"), source=source, worker_id=worker_id, browser=browser)
    join(earlier.experiments.get(slug="pw"), source=source, worker_id=worker_id, browser=browser)


def test_other_raters_are_admitted(studies):
    _, later, _ = studies
    pw = later.experiments.get(slug="pw")
    join(pw, source="mturk", worker_id="A2SOMEONEELSE")
    join(pw, source="prolific", worker_id="6" * 24)
    join(pw)  # another browser
    # the same worker id on another provider is another person
    join(pw, source="prolific", worker_id=WORKER)
    assert Participation.objects.filter(experiment=pw).count() == 4


def test_a_preview_is_not_refused_and_creates_nothing(studies):
    _, later, _ = studies
    raters = Rater.objects.count()
    with pytest.raises(ApplicationError) as err:
        rater_join(
            experiment=later.experiments.get(slug="pw"),
            identity=crowd_identity({"assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE"}),
            browser=BROWSER,
        )
    assert err.value.code == "preview"
    assert Rater.objects.count() == raters
    page = Client().get(
        f"/r/{later.experiments.get(slug='pw').code}/?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE"
    )
    assert page.status_code == 200 and "Accept the HIT to start" in page.content.decode()


def test_the_join_page_says_so_before_the_worker_starts(studies):
    _, later, _ = studies
    code = later.experiments.get(slug="pw").code
    query = f"?workerId={WORKER}&assignmentId=3B2&hitId=3HIT"
    for response in (Client().get(f"/r/{code}/{query}"), Client().post(f"/r/{code}/{query}")):
        text = response.content.decode()
        assert response.status_code == 403
        assert "Thank you for your interest" in text and "Please return the HIT." in text
    prolific = Client().get(f"/r/{code}/?PROLIFIC_PID={PID}")
    assert prolific.status_code == 403
    assert "Please return your submission on Prolific." in prolific.content.decode()
    # a plain-link browser is recognised by its browser cookie
    browser = Client()
    browser.cookies["xai_b"] = BROWSER
    assert browser.get(f"/r/{code}/").status_code == 403
    assert Client().get(f"/r/{code}/").status_code == 200
    assert not Participation.objects.filter(experiment__study=later).exists()
