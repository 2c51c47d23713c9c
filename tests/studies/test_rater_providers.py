"""The rater pages per crowd provider: framing, MTurk without cookies, preview, the end page."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest
from django.test import Client

from apps.recruitment.models import Publication
from apps.recruitment.selectors import publication_for
from apps.studies.models import Assignment, Participation, Rater, Study
from apps.studies.services import study_close
from tests.studies.helpers import answer_all, answer_one, join, launched_study, next_task

pytestmark = pytest.mark.django_db

PID = "5f3e9a1b2c4d6e8f0a1b2c3d"
SESSION = "60aa11bb22cc33dd44ee55ff"
WORKER = "A2WORKER0001"
ASSIGNMENT = "3ASSIGNMENT0001"
SANDBOX = "https://workersandbox.mturk.com"
PRODUCTION = "https://www.mturk.com"


def _publish(study: Study, provider: str, *, sandbox: bool = False, **fields) -> None:
    for experiment in study.experiments.all():
        Publication.objects.create(
            study=study,
            experiment=experiment,
            provider=provider,
            sandbox=sandbox,
            title="t",
            description="d",
            places=5,
            **fields,
        )


def _mturk_query(worker=WORKER, assignment=ASSIGNMENT, submit_to=SANDBOX) -> str:
    query = f"?workerId={worker}&assignmentId={assignment}&hitId=3HIT0001"
    return query + (f"&turkSubmitTo={submit_to}" if submit_to else "")


def _token_from(location: str) -> str:
    return parse_qs(urlparse(location).query)["t"][0]


def _mturk_join(code: str, query: str) -> tuple[Client, str]:
    """An MTurk worker in MTurk's frame: the browser sends no cookie back to us, ever."""
    client = Client(enforce_csrf_checks=True)
    assert client.get(f"/r/{code}/{query}").status_code == 200
    client.cookies.clear()  # SameSite=Lax cookies are not sent in a cross-site frame
    joined = client.post(f"/r/{code}/{query}", {"consent": "yes"})
    assert joined.status_code == 302, joined.content[:300]
    assert urlparse(joined["Location"]).path == f"/r/{code}/task/"
    client.cookies.clear()
    return client, joined["Location"]


# -- framing ------------------------------------------------------------------------------


def test_rater_pages_may_be_framed_by_the_crowd_sites_only(settings):
    settings.RATER_FRAME_ANCESTORS = [
        "https://worker.mturk.com",
        "https://workersandbox.mturk.com",
        "https://bad.example; script-src *",  # never reaches the header
    ]
    study = launched_study()
    code = study.experiments.get(slug="pw").code
    client = Client()
    pages = [
        client.get(f"/r/{code}/"),
        client.get(f"/r/{code}/?workerId=bad"),  # an error page shows in the frame too
        client.get(f"/r/{code}/?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE"),
        client.get(f"/r/{code}/task/"),  # a redirect
        client.get(f"/r/{code}/done/?t=forged"),
    ]
    for page in pages:
        assert "X-Frame-Options" not in page, page
        policy = page["Content-Security-Policy"].split("; ")  # apps.core.security
        assert (
            "frame-ancestors 'self' https://worker.mturk.com https://workersandbox.mturk.com"
            in policy
        )
    for other in (client.get("/"), client.get("/admin/login/")):
        assert other["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in other["Content-Security-Policy"].split("; ")


# -- MTurk in the frame: no cookie, the token in the URL -------------------------------------


def test_an_mturk_worker_works_through_without_any_cookie():
    study = launched_study(tasks_per_rater=2)
    code = study.experiments.get(slug="fc").code
    client, task_url = _mturk_join(code, _mturk_query())
    participation = Participation.objects.get()
    assert participation.rater.source == "mturk" and participation.rater.external_id == WORKER
    assert participation.external_session == {
        "workerId": WORKER,
        "assignmentId": ASSIGNMENT,
        "hitId": "3HIT0001",
        "turkSubmitTo": SANDBOX,
    }
    task_page = client.get(task_url)
    assert task_page.status_code == 200
    token = re.search(r'data-token="([^"]+)"', task_page.content.decode()).group(1)
    assert token == _token_from(task_url)
    # the end page with the token alone: not finished yet, "Continue" keeps the token
    done = client.get(f"/r/{code}/done/?t={token}").content.decode()
    assert 'id="remaining">2<' in done and f"/r/{code}/task/?t=" in done
    assert 'id="mturk-submit"' not in done  # nothing earned, nothing to submit
    answer_all(participation)
    # the finished task page sends the worker on to the end page, token kept
    moved = client.get(task_url)
    assert moved.status_code == 302 and moved["Location"].startswith(f"/r/{code}/done/?t=")
    done = client.get(moved["Location"]).content.decode()
    participation.refresh_from_db()
    assert f'action="{SANDBOX}/mturk/externalSubmit"' in done
    assert f'name="assignmentId" value="{ASSIGNMENT}"' in done
    assert f'name="completion_code" value="{participation.completion_code}"' in done
    assert 'name="csrfmiddlewaretoken"' not in done.split('id="mturk-submit"')[1]


def test_a_worker_reopening_the_hit_without_cookie_continues_the_same_participation():
    study = launched_study(tasks_per_rater=3)
    code = study.experiments.get(slug="pw").code
    _, first_url = _mturk_join(code, _mturk_query())
    first = Participation.objects.get()
    answer_one(first)
    # reopened later (a fresh frame, still no cookie): the same assignment takes it over
    client, again_url = _mturk_join(code, _mturk_query())
    assert _token_from(again_url) == _token_from(first_url)
    assert Participation.objects.count() == 1
    assert client.get(f"/r/{code}/done/?t={_token_from(again_url)}").status_code == 200
    first.refresh_from_db()
    assert first.answered == 1


def test_a_forged_token_in_the_url_is_refused_not_a_new_join():
    study = launched_study()
    code = study.experiments.get(slug="pw").code
    other = study.experiments.get(slug="fc").code
    _, task_url = _mturk_join(code, _mturk_query())
    token = _token_from(task_url)
    for path in ("task", "done"):
        refused = Client().get(f"/r/{code}/{path}/?t={token}x")
        assert refused.status_code == 403 and "not valid any more" in refused.content.decode()
        # a token is bound to its experiment
        assert Client().get(f"/r/{other}/{path}/?t={token}").status_code == 403
    # without any token or cookie: the join page, as before
    assert Client().get(f"/r/{code}/task/")["Location"] == f"/r/{code}/"


def test_csrf_is_waived_for_mturk_joins_only():
    study = launched_study()
    code = study.experiments.get(slug="pw").code
    # an MTurk join needs no CSRF cookie (MTurk's frame never sends it)
    _mturk_join(code, _mturk_query())
    # any other join still needs Django's CSRF check
    for query in ("", f"?PROLIFIC_PID={PID}&STUDY_ID={PID}&SESSION_ID={SESSION}"):
        client = Client(enforce_csrf_checks=True)
        client.get(f"/r/{code}/{query}")
        assert client.post(f"/r/{code}/{query}").status_code == 403
        csrf = client.cookies["csrftoken"].value
        joined = client.post(f"/r/{code}/{query}", {"csrfmiddlewaretoken": csrf, "consent": "yes"})
        assert joined.status_code == 302 and joined["Location"] == f"/r/{code}/task/"
    assert Participation.objects.count() == 3


@pytest.mark.parametrize(
    "forged",
    ["https://evil.example", "https://www.mturk.com.evil.example", "javascript:alert(1)", ""],
)
def test_a_forged_turk_submit_to_is_ignored(forged):
    study = launched_study(tasks_per_rater=1)
    code = study.experiments.get(slug="pw").code
    client, task_url = _mturk_join(code, _mturk_query(submit_to=forged))
    participation = Participation.objects.get()
    assert "turkSubmitTo" not in participation.external_session
    answer_all(participation)
    token = _token_from(task_url)
    # not even from the end page's own query string
    done = client.get(f"/r/{code}/done/?t={token}&turkSubmitTo={forged}").content.decode()
    assert f'action="{PRODUCTION}/mturk/externalSubmit"' in done  # no publication: production
    assert "evil" not in done and "javascript" not in done


def test_without_a_recorded_host_the_publication_says_sandbox_or_production():
    study = launched_study(tasks_per_rater=1)
    _publish(study, "mturk", sandbox=True)
    experiment = study.experiments.get(slug="pw")
    code = experiment.code
    client, task_url = _mturk_join(code, _mturk_query(submit_to=None))
    answer_all(Participation.objects.get())
    done = client.get(f"/r/{code}/done/?t={_token_from(task_url)}").content.decode()
    assert f'action="{SANDBOX}/mturk/externalSubmit"' in done
    # with a production publication as well, the published one is chosen
    _publish(study, "mturk", sandbox=False, status=Publication.Status.PUBLISHED)
    assert publication_for(experiment=experiment, provider="mturk").sandbox is False
    done = client.get(f"/r/{code}/done/?t={_token_from(task_url)}").content.decode()
    assert f'action="{PRODUCTION}/mturk/externalSubmit"' in done


def test_no_submit_form_when_nothing_was_earned():
    study = launched_study(tasks_per_rater=2)
    code = study.experiments.get(slug="pw").code
    client, task_url = _mturk_join(code, _mturk_query())
    study_close(study=study)  # closed before any answer: no code
    done = client.get(f"/r/{code}/done/?t={_token_from(task_url)}").content.decode()
    assert "has been closed" in done
    assert 'id="mturk-submit"' not in done and 'id="completion-code"' not in done


# -- MTurk preview ------------------------------------------------------------------------


@pytest.mark.parametrize("slug", ["pw", "fc"])
def test_an_mturk_preview_shows_an_example_task_and_stores_nothing(slug):
    study = launched_study()
    experiment = study.experiments.get(slug=slug)
    before = (Rater.objects.count(), Participation.objects.count(), Assignment.objects.count())
    query = "?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=3HIT0001&turkSubmitTo=" + SANDBOX
    client = Client()
    page = client.get(f"/r/{experiment.code}/{query}")
    text = page.content.decode()
    assert page.status_code == 200
    assert "Accept the HIT to start" in text and 'id="start"' not in text
    assert 'id="example"' in text and "<img src=" in text
    buttons = re.findall(r"<button[^>]*>", text)
    assert buttons and all("disabled" in b for b in buttons)
    if slug == "pw":
        assert "Which explanation is more reasonable?" in text
    else:
        assert "I don&#x27;t know / None of the above" in text
    # posting the preview's URL starts nothing either
    assert client.post(f"/r/{experiment.code}/{query}").status_code == 400
    after = (Rater.objects.count(), Participation.objects.count(), Assignment.objects.count())
    assert before == after == (0, 0, 0)


# -- Prolific ------------------------------------------------------------------------------


def _prolific_join(code: str) -> Client:
    client = Client()
    query = f"?PROLIFIC_PID={PID}&STUDY_ID={PID}&SESSION_ID={SESSION}"
    client.get(f"/r/{code}/{query}")
    assert client.post(f"/r/{code}/{query}", {"consent": "yes"}).status_code == 302
    return client


def test_prolific_completion_redirects_with_the_study_code():
    study = launched_study(tasks_per_rater=2)
    _publish(study, "prolific")
    experiment = study.experiments.get(slug="pw")
    publication = experiment.publications.get()
    client = _prolific_join(experiment.code)
    participation = Participation.objects.get()
    answer_all(participation)
    participation.refresh_from_db()
    done = client.get(f"/r/{experiment.code}/done/").content.decode()
    url = f"https://app.prolific.com/submissions/complete?cc={publication.completion_code}"
    assert f'<meta http-equiv="refresh" content="3;url={url}">' in done
    assert f'id="prolific-complete" href="{url}"' in done
    assert participation.completion_code not in done  # Prolific matches the study's code


def test_prolific_with_no_task_left_gets_the_no_tasks_code():
    study = launched_study(tasks_per_rater=2, answers_per_task=1)
    _publish(study, "prolific")
    experiment = study.experiments.get(slug="fc")
    client = _prolific_join(experiment.code)
    mine = Participation.objects.get()
    while answer_all(join(experiment)):  # other raters take every task first
        pass
    assert next_task(mine) is None  # the task page finds nothing: ended before any answer
    mine.refresh_from_db()
    assert mine.status == Participation.Status.EXHAUSTED
    done = client.get(f"/r/{experiment.code}/done/").content.decode()
    code = experiment.publications.get().no_tasks_code
    assert f"https://app.prolific.com/submissions/complete?cc={code}" in done
    assert "No tasks left" in done and "please return the task" not in done


def test_prolific_without_a_publication_keeps_the_participation_code():
    study = launched_study(tasks_per_rater=1)
    experiment = study.experiments.get(slug="pw")
    client = _prolific_join(experiment.code)
    participation = Participation.objects.get()
    answer_all(participation)
    participation.refresh_from_db()
    done = client.get(f"/r/{experiment.code}/done/").content.decode()
    assert participation.completion_code in done and "prolific.com" not in done


@pytest.mark.parametrize(
    "query",
    [
        "?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}",
        "?PROLIFIC_PID=%7B%7B%25PROLIFIC_PID%25%7D%7D&STUDY_ID=%7B%7B%25STUDY_ID%25%7D%7D",
        "?PROLIFIC_PID=%257B%257B%2525PROLIFIC_PID%2525%257D%257D",
        f"?PROLIFIC_PID={PID}&STUDY_ID={PID}&SESSION_ID=%7B%7B%25SESSION_ID%25%7D%7D",
    ],
)
def test_a_prolific_link_with_its_placeholders_is_refused_clearly(query):
    study = launched_study()
    code = study.experiments.get(slug="pw").code
    for response in (Client().get(f"/r/{code}/{query}"), Client().post(f"/r/{code}/{query}")):
        assert response.status_code == 400
        text = response.content.decode()
        assert (
            "still has Prolific&#x27;s placeholder" in text
            and "open the study from Prolific" in text
        )
    assert not Rater.objects.exists() and not Participation.objects.exists()


# -- plain link ------------------------------------------------------------------------------


def _link_join(code: str) -> Client:
    client = Client()
    client.get(f"/r/{code}/")
    assert client.post(f"/r/{code}/", {"consent": "yes"})["Location"] == f"/r/{code}/task/"
    return client


def test_plain_link_end_shows_the_code_and_the_researchers_continue_button():
    study = launched_study(tasks_per_rater=1)
    _publish(study, "link", completion_redirect_url="https://survey.example.org/next?src=xai")
    experiment = study.experiments.get(slug="pw")
    client = _link_join(experiment.code)
    participation = Participation.objects.get()
    before = client.get(f"/r/{experiment.code}/done/").content.decode()
    assert 'id="continue-url"' not in before  # not finished: no way out yet
    answer_all(participation)
    participation.refresh_from_db()
    done = client.get(f"/r/{experiment.code}/done/").content.decode()
    assert f'id="completion-code">{participation.completion_code}<' in done
    assert 'id="continue-url" href="https://survey.example.org/next?src=xai"' in done
    assert "http-equiv" not in done  # a button, not an automatic move
    # without a redirect address: the code alone
    Publication.objects.update(completion_redirect_url="")
    assert 'id="continue-url"' not in client.get(f"/r/{experiment.code}/done/").content.decode()
