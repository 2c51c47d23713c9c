"""Answers: the streamed CSV equals the export; JSON pages hold the same rows."""

from __future__ import annotations

import csv
import io

from apps.studies.csv_contract import RESPONSE_COLUMNS
from apps.studies.exports import response_csv_lines
from tests.studies.helpers import answer_one, join


def _answers(study, n_pairwise: int = 3, n_forced: int = 2) -> None:
    pairwise, forced = study.experiments.get(slug="pw"), study.experiments.get(slug="fc")
    rater = join(pairwise)
    for _ in range(n_pairwise):
        answer_one(rater)
    rater = join(forced)
    for _ in range(n_forced):
        answer_one(rater, choice=0)


def test_the_csv_is_streamed_and_equals_the_export(api, study):
    _answers(study)
    response = api.get(f"/api/v1/studies/{study.slug}/responses.csv")
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="mine-responses.csv"' in response["Content-Disposition"]
    body = b"".join(response.streaming_content).decode()
    assert body == "".join(response_csv_lines(study=study))
    assert len(body.splitlines()) == 1 + 5


def test_the_csv_errors_stay_json_whatever_accept_says(api, others_study):
    response = api.get(f"/api/v1/studies/{others_study.slug}/responses.csv", HTTP_ACCEPT="text/csv")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"


def test_json_pages_hold_the_csv_rows(api, study):
    _answers(study)
    expected = list(csv.DictReader(io.StringIO("".join(response_csv_lines(study=study)))))
    url = f"/api/v1/studies/{study.slug}/responses/"
    first = api.get(url + "?limit=2").json()
    assert first["previous"] is None and "offset=2" in first["next"]
    assert list(first["results"][0]) == list(RESPONSE_COLUMNS)
    rows, page = list(first["results"]), first
    while page["next"]:
        page = api.get(page["next"]).json()
        rows += page["results"]
    assert rows == expected
    assert len(rows) == 5
    assert page["previous"] and "offset=2" in page["previous"]


def test_json_pages_of_a_study_without_answers_are_empty(api, study):
    body = api.get(f"/api/v1/studies/{study.slug}/responses/").json()
    assert body == {"next": None, "previous": None, "results": []}


def test_json_pages_refuse_a_bad_limit(api, study):
    response = api.get(f"/api/v1/studies/{study.slug}/responses/?limit=5000")
    assert response.status_code == 400
    assert response.json()["message"].startswith("limit:")
