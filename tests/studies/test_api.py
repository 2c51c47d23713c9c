"""The rater pages and JSON API over HTTP (Django test client)."""

from __future__ import annotations

import json
import random
import re
import uuid

import pytest
from django.test import Client

from apps.studies.models import Assignment, Participation, Rater, Response
from apps.studies.services import study_close, study_pause
from tests.studies.helpers import launched_study

pytestmark = pytest.mark.django_db

PID = "5f3e9a1b2c4d6e8f0a1b2c3d"


class Rater_:
    """A browser: joins through the pages, then talks to the API with the page's token."""

    def __init__(self, code: str, query: str = "", *, client: Client | None = None) -> None:
        self.code = code
        self.client = client or Client(enforce_csrf_checks=True)
        page = self.client.get(f"/r/{code}/{query}")
        assert page.status_code == 200, page.content[:500]
        csrf = self.client.cookies["csrftoken"].value
        joined = self.client.post(
            f"/r/{code}/{query}", {"csrfmiddlewaretoken": csrf, "consent": "yes"}
        )
        # an MTurk join carries the token in the task page's URL (?t=): MTurk's frame has no cookies
        assert joined.status_code == 302
        assert joined["Location"].split("?")[0].endswith(f"/r/{code}/task/")
        task_page = self.client.get(joined["Location"]).content.decode()
        self.token = re.search(r'data-token="([^"]+)"', task_page).group(1)

    def next(self):
        return self.client.get(f"/api/r/{self.code}/next", HTTP_X_RATER_TOKEN=self.token)

    def post(self, path: str, body, *, token: str | None = None):
        return self.client.post(
            f"/api/r/{self.code}/{path}",
            data=body if isinstance(body, str | bytes) else json.dumps(body),
            content_type="application/json",
            HTTP_X_RATER_TOKEN=self.token if token is None else token,
        )

    def answer(self, assignment_id: str, choice: int, response_ms: int = 1234):
        return self.post(
            "responses",
            {"assignment_id": assignment_id, "choice": choice, "response_ms": response_ms},
        )


def _code(study, slug: str = "pw") -> str:
    return study.experiments.get(slug=slug).code


def test_next_without_a_token_says_how_to_continue():
    study = launched_study()
    response = Client().get(f"/api/r/{_code(study)}/next")
    assert response.status_code == 403
    assert "Open the study link again" in response.json()["message"]


def test_a_token_is_valid_only_for_its_own_experiment():
    study = launched_study()
    rater = Rater_(_code(study))
    other = Client().get(f"/api/r/{_code(study, 'fc')}/next", HTTP_X_RATER_TOKEN=rater.token)
    assert other.status_code == 403
    forged = Client().get(
        f"/api/r/{rater.code}/next", HTTP_X_RATER_TOKEN=rater.token.replace(":", ":x")
    )
    assert forged.status_code == 403


def test_an_unknown_link_is_a_clear_404():
    response = Client().get("/r/nope1234/")
    assert response.status_code == 404 and "not valid" in response.content.decode()


@pytest.mark.parametrize("code", ["x" * 300, "ab%00cd", "a.b.c.d", "%F0%9F%92%A9abc", "ab"])
def test_malformed_links_never_reach_the_database(code, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert Client().get(f"/r/{code}/").status_code == 404
        assert Client().get(f"/api/r/{code}/next").status_code == 404


def test_pairwise_flow_reveals_no_condition_and_stores_each_answer_once():
    study = launched_study(tasks_per_rater=3)
    rater = Rater_(_code(study))

    first = rater.next().json()
    again = rater.next().json()
    task = first["task"]
    # a reload shows the same task, with a heartbeat interval
    assert first["state"] == "task" and again["task"]["assignment_id"] == task["assignment_id"]
    assert first["heartbeat_s"] >= 5
    assert task["kind"] == "pairwise" and len(task["options"]) == 5
    # blinding: nothing in the payload names a variant, CPR or method
    text = json.dumps(first).lower()
    assert not re.search(r"cpr|gradcam|heat|occlusion|variant", text)
    assert re.fullmatch(r"/media/s/[0-9a-f]{2}/[0-9a-f]{32}\.png", task["left_url"])

    answered = rater.answer(task["assignment_id"], 0)
    assert answered.status_code == 201
    body = answered.json()
    assert body["response"]["answer_raw"] == "Left clearly more reasonable"
    assert body["response"]["late"] is False and body["response"]["over_quota"] is False
    # a retried request does not count twice: 200 with the stored answer
    retry = rater.answer(task["assignment_id"], 0)
    assert retry.status_code == 200
    assert retry.json()["response"] == body["response"]
    assert Response.objects.count() == 1
    assert retry.json()["next"]["progress"] == {"answered": 1, "target": 3}
    # a different choice for the same task: 409 naming the stored answer
    conflict = rater.answer(task["assignment_id"], 3)
    assert conflict.status_code == 409 and conflict.json()["code"] == "answer_conflict"
    assert "Left clearly more reasonable" in conflict.json()["message"]
    assert Response.objects.get().choice == 0


def test_the_api_needs_no_csrf_cookie_but_the_token():
    study = launched_study()
    rater = Rater_(_code(study))
    task = rater.next().json()["task"]
    bare = Client(enforce_csrf_checks=True)  # no cookies at all
    response = bare.post(
        f"/api/r/{rater.code}/responses",
        data=json.dumps({"assignment_id": task["assignment_id"], "choice": 1}),
        content_type="application/json",
        HTTP_X_RATER_TOKEN=rater.token,
    )
    assert response.status_code == 201
    without = rater.post(
        "responses", {"assignment_id": task["assignment_id"], "choice": 1}, token=""
    )
    assert without.status_code == 403


def test_bad_input_names_the_field():
    study = launched_study()
    rater = Rater_(_code(study))
    rater.next()
    response = rater.post("responses", {"assignment_id": "x", "choice": -1})
    assert response.status_code == 400
    body = response.json()
    assert body["message"].startswith(("assignment_id", "choice"))
    assert set(body["extra"]["fields"]) == {"assignment_id", "choice"}
    too_long = rater.post(
        "responses",
        {
            "assignment_id": rater.next().json()["task"]["assignment_id"],
            "choice": 0,
            "response_ms": 2**31,
        },
    )
    assert too_long.status_code == 400 and too_long.json()["message"].startswith("response_ms")
    choice = rater.answer(rater.next().json()["task"]["assignment_id"], 7)
    assert choice.status_code == 400 and choice.json()["message"].startswith("choice")


def _fuzz_values(rng: random.Random):
    yield from [
        None, True, 0, -1, 2**31, 2**63, -(2**63), 1e309, 1.5, "", "x" * 5000, "\x00", "0\x00",
        "1", [], {}, [1], {"a": 1}, "𝓤𝓷𝓲𝓬𝓸𝓭𝓮", str(uuid.uuid4()), "NaN",
    ]  # fmt: skip
    for _ in range(30):
        yield rng.choice(
            [
                rng.randint(-(2**40), 2**40),
                rng.random() * 1e12,
                "".join(chr(rng.randint(0, 0x2FFF)) for _ in range(rng.randint(0, 40))),
            ]
        )


def test_fuzzed_rater_api_input_is_a_4xx_never_a_500():
    study = launched_study(tasks_per_rater=1000)
    rater = Rater_(_code(study))
    rng = random.Random(9)
    real_id = rater.next().json()["task"]["assignment_id"]
    statuses = set()
    values = list(_fuzz_values(rng))
    bodies = [
        b"",
        b"{",
        b"[1,2]",
        b"null",
        b'"str"',
        b"\x00\xff",
        json.dumps({"choice": 1}).encode(),
    ]
    for value in values:
        for field in ("assignment_id", "choice", "response_ms"):
            body = {"assignment_id": real_id, "choice": 1, "response_ms": 5, field: value}
            bodies.append(json.dumps(body, allow_nan=True).encode())
    for body in bodies:
        for path in ("responses", "heartbeat"):
            response = rater.post(path, body)
            statuses.add(response.status_code)
            assert response.status_code < 500, (path, body[:200], response.content[:300])
            assert "message" in response.json() or response.status_code in (200, 201)
    assert 400 in statuses
    # and the server still serves this rater normally afterwards
    assert rater.next().status_code == 200


def test_answer_plus_next_takes_few_queries(django_assert_max_num_queries):
    study = launched_study(tasks_per_rater=10)
    rater = Rater_(_code(study))
    task = rater.next().json()["task"]
    with django_assert_max_num_queries(12):
        response = rater.answer(task["assignment_id"], 2)
    assert response.status_code == 201 and response.json()["next"]["state"] == "task"
    with django_assert_max_num_queries(7):
        assert rater.next().status_code == 200


def test_forced_choice_done_after_target_and_completion_code_shown_only_then():
    study = launched_study(tasks_per_rater=2)
    rater = Rater_(_code(study, "fc"))
    done_page = rater.client.get(f"/r/{rater.code}/done/").content.decode()
    assert "completion-code" not in done_page and 'id="remaining">2<' in done_page
    payload = rater.next().json()
    assert payload["task"]["options"][-1] == "I don't know / None of the above"
    for _ in range(2):
        payload = rater.answer(payload["task"]["assignment_id"], 3).json()["next"]
    assert payload["done"] is True and payload["state"] == "done"
    done = rater.client.get(payload["done_url"]).content.decode()
    participation = Participation.objects.get()
    assert participation.completion_code in done
    # the task page now sends the rater to the end page
    assert rater.client.get(f"/r/{rater.code}/task/")["Location"].endswith("/done/")


def test_prolific_link_records_the_worker_and_another_browser_is_refused():
    study = launched_study()
    code = _code(study)
    query = f"?PROLIFIC_PID={PID}&STUDY_ID={PID}&SESSION_ID={PID[::-1]}"
    rater = Rater_(code, query)
    rater.next()
    participation = study.experiments.get(slug="pw").participations.get()
    assert participation.rater.source == "prolific" and participation.rater.external_id == PID
    assert participation.external_session == {
        "PROLIFIC_PID": PID,
        "STUDY_ID": PID,
        "SESSION_ID": PID[::-1],
    }
    # someone else who knows the PID cannot take over from another browser
    thief = Client()
    thief.get(f"/r/{code}/?PROLIFIC_PID={PID}")
    refused = thief.post(f"/r/{code}/?PROLIFIC_PID={PID}")
    assert refused.status_code == 409 and "another browser" in refused.content.decode()
    assert "xr_" + code not in thief.cookies


def test_a_shared_browser_opening_a_new_worker_link_gets_that_workers_own_participation():
    study = launched_study()
    code = _code(study)
    first = Rater_(code, "?workerId=A111&assignmentId=X1&hitId=H1")
    first.answer(first.next().json()["task"]["assignment_id"], 1)
    second = Rater_(code, "?workerId=A222&assignmentId=X2&hitId=H1", client=first.client)
    assert second.next().json()["progress"]["answered"] == 0
    assert Rater.objects.filter(source="mturk").count() == 2


def test_invalid_worker_ids_are_a_400_page_naming_the_field():
    study = launched_study()
    for query in ("?workerId=" + "A" * 5000, "?PROLIFIC_PID=abc", "?workerId=A1%00B"):
        response = Client().get(f"/r/{_code(study)}/{query}")
        assert response.status_code == 400
        text = response.content.decode()
        assert "workerId" in text or "PROLIFIC_PID" in text
    assert not Rater.objects.exists()


def test_an_mturk_preview_shows_the_instructions_and_creates_nothing():
    study = launched_study()
    page = Client().get(f"/r/{_code(study)}/?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=H1")
    text = page.content.decode()
    assert page.status_code == 200 and 'id="preview"' in text and 'id="start"' not in text
    assert not Rater.objects.exists() and not Participation.objects.exists()


def test_closing_mid_task_moves_the_page_to_a_clean_end():
    study = launched_study()
    rater = Rater_(_code(study))
    task = rater.next().json()["task"]
    rater.answer(task["assignment_id"], 1)
    on_screen = rater.next().json()["task"]
    study_close(study=study)
    refused = rater.answer(on_screen["assignment_id"], 2)
    assert refused.status_code == 409 and refused.json()["code"] == "closed"
    payload = rater.next().json()
    assert payload["state"] == "closed" and payload["done"] is True and payload["task"] is None
    end = rater.client.get(payload["done_url"]).content.decode()
    assert "has been closed" in end and "1 answer you gave is saved" in end
    assert 'id="completion-code"' in end
    assert Response.objects.count() == 1


def test_paused_study_says_so_and_asks_to_wait():
    study = launched_study()
    rater = Rater_(_code(study))
    task = rater.next().json()["task"]
    study_pause(study=study)
    payload = rater.answer(task["assignment_id"], 1).json()["next"]
    assert payload["state"] == "paused" and payload["task"] is None
    assert payload["retry_after"] > 0 and "paused" in payload["message"]
    assert Assignment.objects.count() == 1


def test_heartbeat_keeps_the_lease_and_only_for_the_raters_own_task():
    study = launched_study()
    rater = Rater_(_code(study))
    task = rater.next().json()["task"]
    beat = rater.post("heartbeat", {"assignment_id": task["assignment_id"]})
    assert beat.status_code == 200 and beat.json()["held"] is True
    other = Rater_(_code(study))
    foreign = other.post("heartbeat", {"assignment_id": task["assignment_id"]})
    assert foreign.status_code == 404


def test_an_answer_before_the_minimum_viewing_time_is_a_400_and_stores_nothing():
    # given a pairwise experiment whose raters must look at a task for 2 s
    study = launched_study(tasks_per_rater=3, min_viewing_ms=2000)
    rater = Rater_(_code(study))
    task = rater.next().json()["task"]

    # when an answer claims less (or no) viewing time, it is refused, naming the field
    too_fast = rater.answer(task["assignment_id"], 1, response_ms=1999)
    assert too_fast.status_code == 400 and too_fast.json()["code"] == "too_fast"
    assert too_fast.json()["message"].startswith("response_ms")
    assert "2000 ms" in too_fast.json()["message"]
    untimed = rater.post("responses", {"assignment_id": task["assignment_id"], "choice": 1})
    assert untimed.status_code == 400 and untimed.json()["code"] == "too_fast"
    assert not Response.objects.exists()

    # then the same answer after the minimum is stored, with its viewing time
    stored = rater.answer(task["assignment_id"], 1, response_ms=2000)
    assert stored.status_code == 201
    assert Response.objects.get().response_ms == 2000


def test_the_task_page_carries_the_page_options_and_never_a_condition():
    study = launched_study(min_viewing_ms=800, min_screen_width=600)
    rater = Rater_(_code(study, "fc"))
    page = rater.client.get(f"/r/{_code(study, 'fc')}/task/").content.decode()
    assert 'data-min-viewing-ms="800"' in page and 'data-min-screen-width="600"' in page
    assert "at least 600 px wide" in page
    visible = re.sub(r'data-token="[^"]*"', "", page).lower()  # a random token may hold "cpr"
    assert not re.search(r"cpr|gradcam|variant", visible)


@pytest.mark.parametrize("field,value", [("min_viewing_ms", 60_001), ("min_screen_width", 3841)])
def test_page_options_out_of_range_are_refused_at_design_time(field, value):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as refused:
        launched_study(**{field: value})
    assert field in refused.value.message_dict
