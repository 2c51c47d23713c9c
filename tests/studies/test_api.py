from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from apps.studies.models import Response
from tests.studies.helpers import launched_study

pytestmark = pytest.mark.django_db


def _joined_client(code: str, query: str = "", *, enforce_csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=enforce_csrf)
    page = client.get(f"/r/{code}/{query}")
    assert page.status_code == 200
    token = client.cookies["csrftoken"].value if "csrftoken" in client.cookies else None
    headers = {"HTTP_X_CSRFTOKEN": token} if token else {}
    response = client.post(f"/r/{code}/{query}", {"csrfmiddlewaretoken": token or ""}, **headers)
    assert response.status_code == 302 and response["Location"].endswith(f"/r/{code}/task/")
    client.get(f"/r/{code}/task/")  # sets the csrftoken cookie for the API
    return client


def _post(client: Client, code: str, body: dict):
    return client.post(
        f"/api/r/{code}/responses",
        data=json.dumps(body),
        content_type="application/json",
        HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value,
    )


def test_next_without_a_session_says_how_to_continue():
    study = launched_study()
    code = study.experiments.get(slug="pw").code
    response = Client().get(f"/api/r/{code}/next")
    assert response.status_code == 403
    assert "Open the study link again" in response.json()["message"]


def test_unknown_link_is_a_clear_404():
    assert "not valid" in Client().get("/r/nope/").content.decode()


def test_pairwise_flow_reveals_no_condition_and_stores_each_answer_once():
    study = launched_study(tasks_per_rater=3)
    code = study.experiments.get(slug="pw").code
    client = _joined_client(code, enforce_csrf=True)

    first = client.get(f"/api/r/{code}/next").json()
    again = client.get(f"/api/r/{code}/next").json()
    task = first["task"]
    # a reload shows the same task
    assert again["task"]["assignment_id"] == task["assignment_id"]
    assert task["kind"] == "pairwise" and len(task["options"]) == 5
    # blinding: nothing in the payload names a variant, CPR or method
    text = json.dumps(first).lower()
    assert not re.search(r"cpr|gradcam|heat|occlusion|variant", text)
    assert re.fullmatch(r"/media/s/[0-9a-f]{2}/[0-9a-f]{32}\.png", task["left_url"])

    answered = _post(
        client, code, {"assignment_id": task["assignment_id"], "choice": 0, "response_ms": 1234}
    )
    assert answered.status_code == 201
    assert answered.json()["response"]["answer_raw"] == "Left clearly more reasonable"
    # a retried request does not count twice
    retry = _post(
        client, code, {"assignment_id": task["assignment_id"], "choice": 0, "response_ms": 1234}
    )
    assert retry.status_code == 201
    assert Response.objects.count() == 1
    assert retry.json()["next"]["progress"] == {"answered": 1, "target": 3}


def test_submit_without_csrf_token_is_refused():
    study = launched_study()
    code = study.experiments.get(slug="pw").code
    client = _joined_client(code, enforce_csrf=True)
    task = client.get(f"/api/r/{code}/next").json()["task"]
    response = client.post(
        f"/api/r/{code}/responses",
        data=json.dumps({"assignment_id": task["assignment_id"], "choice": 0}),
        content_type="application/json",
    )
    assert response.status_code == 403 and "reload" in response.json()["message"]
    assert Response.objects.count() == 0


def test_bad_input_names_the_field():
    study = launched_study()
    code = study.experiments.get(slug="pw").code
    client = _joined_client(code)
    client.get(f"/api/r/{code}/next")
    response = _post(client, code, {"assignment_id": "x", "choice": -1})
    assert response.status_code == 400
    body = response.json()
    assert body["message"].startswith(("assignment_id", "choice"))
    assert set(body["extra"]["fields"]) == {"assignment_id", "choice"}


def test_forced_choice_done_after_target_and_completion_code_shown():
    study = launched_study(tasks_per_rater=2)
    code = study.experiments.get(slug="fc").code
    client = _joined_client(code)
    payload = client.get(f"/api/r/{code}/next").json()
    assert payload["task"]["options"][-1] == "I don't know / None of the above"
    for _ in range(2):
        payload = _post(
            client, code, {"assignment_id": payload["task"]["assignment_id"], "choice": 3}
        ).json()["next"]
    assert payload["done"] is True
    done = client.get(payload["done_url"]).content.decode()
    participation = Response.objects.first().assignment.participation
    assert participation.completion_code in done


def test_prolific_link_records_the_worker():
    study = launched_study()
    code = study.experiments.get(slug="pw").code
    client = _joined_client(code, "?PROLIFIC_PID=abc&STUDY_ID=s1&SESSION_ID=x9")
    client.get(f"/api/r/{code}/next")
    participation = study.experiments.get(slug="pw").participations.get()
    assert participation.rater.source == "prolific" and participation.rater.external_id == "abc"
    assert participation.external_session == {
        "PROLIFIC_PID": "abc",
        "STUDY_ID": "s1",
        "SESSION_ID": "x9",
    }
