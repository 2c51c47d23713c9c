"""The rater list: one row per participation with its quality, filtered and paginated."""

from __future__ import annotations

from django.utils import timezone

from apps.studies.models import Participation, Rater
from tests.studies.helpers import answer_one, join

PROLIFIC = {"PROLIFIC_PID": "a" * 24, "STUDY_ID": "b" * 24, "SESSION_ID": "c" * 24}


def test_raters_carry_quality_and_exclusion(api, study):
    # given a plain-link rater and a Prolific rater, the second excluded by the quality rules
    pairwise, forced = study.experiments.get(slug="pw"), study.experiments.get(slug="fc")
    plain = join(pairwise)
    answer_one(plain)
    crowd = join(
        forced, source=Rater.Source.PROLIFIC, worker_id=PROLIFIC["PROLIFIC_PID"], session=PROLIFIC
    )
    Participation.objects.filter(pk=crowd.pk).update(
        quality={"n_answers": 4, "catch_accuracy": 0.25, "reasons": "catch"},
        excluded_at=timezone.now(),
        exclusion_reasons="catch",
    )
    # when the researcher lists the raters
    body = api.get(f"/api/v1/studies/{study.slug}/raters/").json()
    # then both come, in experiment order, with their figures
    assert body["count"] == 2 and body["next"] is None and body["previous"] is None
    first, second = body["results"]
    assert first["rater_id"] == str(plain.rater.public_id)
    assert (first["source"], first["external_id"]) == ("link", None)  # a browser hash: hidden
    assert (first["experiment"], first["status"]) == ("pw", "active")
    assert (first["answered"], first["target"]) == (1, plain.target)
    assert first["checks_answered"] == 0 and first["checks_planned"] == 0
    assert first["excluded_at"] is None and first["exclusion_reasons"] == ""
    assert (second["source"], second["external_id"]) == ("prolific", "a" * 24)
    assert second["quality"]["catch_accuracy"] == 0.25
    assert second["excluded_at"] and second["exclusion_reasons"] == "catch"


def test_raters_filter_by_experiment_and_exclusion(api, study):
    pairwise, forced = study.experiments.get(slug="pw"), study.experiments.get(slug="fc")
    kept, dropped, other = join(pairwise), join(pairwise), join(forced)
    Participation.objects.filter(pk=dropped.pk).update(excluded_at=timezone.now())
    url = f"/api/v1/studies/{study.slug}/raters/"

    def ids(query: str) -> set[str]:
        return {row["rater_id"] for row in api.get(url + query).json()["results"]}

    assert ids("?experiment=fc") == {str(other.rater.public_id)}
    assert ids("?excluded=true") == {str(dropped.rater.public_id)}
    assert ids("?excluded=false&experiment=pw") == {str(kept.rater.public_id)}
    assert len(ids("")) == 3


def test_raters_unknown_experiment_and_bad_filters(api, study):
    url = f"/api/v1/studies/{study.slug}/raters/"
    missing = api.get(url + "?experiment=nope")
    assert missing.status_code == 404
    assert missing.json()["message"] == "Study 'mine' has no experiment 'nope'."
    bad = api.get(url + "?excluded=maybe&limit=0")
    assert bad.status_code == 400
    assert set(bad.json()["extra"]["fields"]) == {"excluded", "limit"}
    assert bad.json()["message"].startswith("excluded:") or bad.json()["message"].startswith(
        "limit:"
    )


def test_raters_are_paginated(api, study):
    pairwise = study.experiments.get(slug="pw")
    joined = [str(join(pairwise).rater.public_id) for _ in range(5)]
    url = f"/api/v1/studies/{study.slug}/raters/"
    first = api.get(url + "?limit=2").json()
    assert first["count"] == 5 and first["previous"] is None
    assert "offset=2" in first["next"]
    second = api.get(first["next"]).json()
    last = api.get(api.get(second["next"]).json()["previous"]).json()
    third = api.get(second["next"]).json()
    assert third["next"] is None
    seen = [r["rater_id"] for page in (first, second, third) for r in page["results"]]
    assert seen == joined
    assert last["results"] == second["results"]
