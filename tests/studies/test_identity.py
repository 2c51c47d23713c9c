"""Joining: crowd ids validated per provider, participations bound to their browser."""

from __future__ import annotations

import pytest

from apps.core.exceptions import ApplicationError, ConflictError
from apps.studies.identity import (
    CrowdIdentity,
    browser_hash,
    crowd_identity,
    participation_id_from_token,
    rater_token,
)
from apps.studies.models import Participation, Rater
from apps.studies.services import rater_join
from tests.studies.helpers import answer_one, join, launched_study

pytestmark = pytest.mark.django_db

PID = "5f3e9a1b2c4d6e8f0a1b2c3d"
SESSION = "60aa11bb22cc33dd44ee55ff"
WORKER = "A1B2C3D4E5F6G7"


def test_prolific_and_mturk_links_are_recognised():
    prolific = crowd_identity({"PROLIFIC_PID": PID, "STUDY_ID": PID, "SESSION_ID": SESSION})
    assert prolific == CrowdIdentity(
        "prolific", PID, {"PROLIFIC_PID": PID, "STUDY_ID": PID, "SESSION_ID": SESSION}
    )
    assert prolific.session_id == SESSION
    mturk = crowd_identity({"workerId": WORKER, "assignmentId": "3X4Y5Z", "hitId": "9A8B"})
    assert mturk.source == "mturk" and mturk.worker_id == WORKER and mturk.session_id == "3X4Y5Z"
    assert crowd_identity({}).source == "link"
    assert crowd_identity({"assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE", "hitId": "H1"}).preview


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"PROLIFIC_PID": "x" * 5000}, "PROLIFIC_PID"),
        ({"PROLIFIC_PID": "abc"}, "PROLIFIC_PID"),
        ({"PROLIFIC_PID": PID[:-1] + "\x00"}, "PROLIFIC_PID"),
        ({"PROLIFIC_PID": PID, "SESSION_ID": "bad id"}, "SESSION_ID"),
        ({"workerId": "a1b2c3"}, "workerId"),
        ({"workerId": "A" * 65}, "workerId"),
        ({"workerId": WORKER, "assignmentId": "x<y>"}, "assignmentId"),
        ({"assignmentId": "3X4Y5Z"}, "workerId"),
    ],
)
def test_bad_crowd_ids_are_refused_naming_the_field(query, field):
    with pytest.raises(ApplicationError) as err:
        crowd_identity(query)
    assert err.value.status_code == 400 and err.value.message.startswith(field)
    assert "\x00" not in err.value.message and len(err.value.message) < 200


def test_a_crowd_worker_from_another_browser_is_refused():
    study = launched_study()
    experiment = study.experiments.get(slug="pw")
    browser = "m" * 43
    mine = join(
        experiment,
        source="prolific",
        worker_id=PID,
        session={"SESSION_ID": SESSION},
        browser=browser,
    )
    answer_one(mine)
    # the same browser resumes
    again = join(experiment, source="prolific", worker_id=PID, browser=browser)
    assert again.pk == mine.pk
    # another browser with the worker id alone is refused
    with pytest.raises(ConflictError) as err:
        join(experiment, source="prolific", worker_id=PID)
    assert err.value.code == "other_browser" and "another browser" in err.value.message
    # with the same provider session id it resumes there, documented (README)
    moved = join(
        experiment,
        source="prolific",
        worker_id=PID,
        session={"SESSION_ID": SESSION},
        browser="n" * 43,
    )
    assert moved.pk == mine.pk and moved.browser_hash == browser_hash("n" * 43)


def test_a_shared_browser_keeps_two_workers_apart():
    study = launched_study()
    experiment = study.experiments.get(slug="pw")
    browser = "s" * 43
    first = join(experiment, source="mturk", worker_id="A111", browser=browser)
    second = join(experiment, source="mturk", worker_id="A222", browser=browser)
    assert first.pk != second.pk and first.rater_id != second.rater_id
    answer_one(first)
    second.refresh_from_db()
    assert second.answered == 0


def test_a_plain_link_browser_has_one_participation_per_experiment():
    study = launched_study()
    experiment = study.experiments.get(slug="pw")
    browser = "p" * 43
    assert join(experiment, browser=browser).pk == join(experiment, browser=browser).pk
    assert join(experiment).pk != join(experiment, browser=browser).pk
    assert Rater.objects.filter(source="link").count() == 2


def test_plain_link_joins_can_be_limited_per_ip_and_per_browser(settings):
    study = launched_study()
    pw, fc = study.experiments.get(slug="pw"), study.experiments.get(slug="fc")
    settings.RATER_LINK_JOINS_PER_IP_PER_HOUR = 2

    def from_ip(experiment, browser=None):
        from apps.studies.identity import new_browser_id

        return rater_join(
            experiment=experiment,
            identity=CrowdIdentity("link"),
            browser=browser or new_browser_id(),
            ip="203.0.113.7",
        )

    from_ip(pw)
    from_ip(pw)
    with pytest.raises(ApplicationError) as err:
        from_ip(pw)
    assert err.value.status_code == 429
    # another address is not affected, and nothing stores the address itself
    rater_join(experiment=pw, identity=CrowdIdentity("link"), browser="q" * 43, ip="198.51.100.1")
    assert not Participation.objects.filter(ip_hash__contains="203.0").exists()
    settings.RATER_LINK_JOINS_PER_IP_PER_HOUR = 0
    settings.RATER_LINK_JOINS_PER_BROWSER_PER_HOUR = 1
    from_ip(pw, browser="r" * 43)
    with pytest.raises(ApplicationError, match="this browser"):
        from_ip(fc, browser="r" * 43)


def test_an_mturk_preview_creates_nothing():
    study = launched_study()
    with pytest.raises(ApplicationError, match="preview"):
        rater_join(
            experiment=study.experiments.get(slug="pw"),
            identity=crowd_identity({"assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE"}),
            browser="t" * 43,
        )
    assert not Rater.objects.exists()


def test_rater_tokens_are_signed_and_bound_to_their_experiment():
    token = rater_token(code="abcdEFGH", participation_id=42)
    assert participation_id_from_token(token, code="abcdEFGH") == 42
    assert participation_id_from_token(token, code="other123") is None
    assert participation_id_from_token("42.abcdEFGH:forged", code="abcdEFGH") is None
    assert participation_id_from_token(token.replace("42", "43"), code="abcdEFGH") is None
    assert participation_id_from_token("", code="abcdEFGH") is None
    assert participation_id_from_token("x" * 5000, code="abcdEFGH") is None


def test_turk_submit_to_is_kept_only_when_it_is_an_allowed_submit_host(settings):
    settings.MTURK_SUBMIT_HOSTS = {
        "production": "https://www.mturk.com",
        "sandbox": "https://workersandbox.mturk.com",
    }
    base = {"workerId": WORKER, "assignmentId": "3X4Y5Z", "hitId": "9A8B"}
    for given, kept in [
        ("https://workersandbox.mturk.com", "https://workersandbox.mturk.com"),
        ("https://www.mturk.com/", "https://www.mturk.com"),
        ("HTTPS://WWW.MTURK.COM", "https://www.mturk.com"),
        ("https://evil.example", None),
        ("https://www.mturk.com.evil.example", None),
        ("https://www.mturk.com/mturk/externalSubmit", None),
        ("x" * 5000, None),
    ]:
        session = crowd_identity({**base, "turkSubmitTo": given}).session
        assert session.get("turkSubmitTo") == kept, given
    assert crowd_identity(base).session == base


def test_prolific_placeholders_are_refused_with_their_own_message():
    for value in ("{{%PROLIFIC_PID%}}", "%7B%7B%25PROLIFIC_PID%25%7D%7D"):
        with pytest.raises(ApplicationError) as err:
            crowd_identity({"PROLIFIC_PID": value})
        assert err.value.code == "prolific_placeholder" and err.value.status_code == 400
        assert "open the study from Prolific" in err.value.message
    with pytest.raises(ApplicationError, match="placeholder"):
        crowd_identity({"PROLIFIC_PID": PID, "STUDY_ID": "{{%STUDY_ID%}}"})
