"""The live monitor: figures on a small crafted study, permissions, the JSON shape."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import include, path

from apps.studies.models import Participation, Rater, Response, Slot
from apps.studies.monitor import monitor_experiments, monitor_raters, study_monitor
from apps.studies.services.quality import participation_reopen_slots
from tests.studies.helpers import answer, answer_one, join, launched_study, next_task

# The monitor's URLs until config/urls.py includes them (harmless afterwards).
urlpatterns = [
    path("", include("apps.studies.monitor_urls")),
    path("", include("config.urls")),
]

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]

LEASE = 60


def _study():
    # answers_per_task=1: a late answer on a task someone else answered meanwhile is over quota.
    return launched_study(
        images_per_class=1, answers_per_task=1, tasks_per_rater=4, lease_seconds=LEASE
    )


def _pw(study):
    return study.experiments.get(slug="pw")


def test_experiment_figures_on_a_crafted_study(clock):
    # given: a pairwise experiment where
    study = _study()
    pw = _pw(study)
    n_slots = Slot.objects.filter(experiment=pw).count()
    # ... rater A answered two tasks six minutes ago (outside the rate window)
    a = join(pw)
    answer_one(a)
    answer_one(a)
    clock.advance(6 * 60)
    # ... rater B's lease ran out without an answer (stranded) and B answers it late,
    #     after rater C took and answered the freed slot (over quota)
    b = join(pw)
    b_task = next_task(b)
    clock.advance(LEASE + 1)
    c = join(pw)
    answer_one(c)  # C gets the expired slot (lowest rank) or the next one
    late = answer(b, b_task).response
    # ... raters D and E hold a task right now (on screen), then E's lease runs out
    #     unanswered and no claim has taken the slot yet (stranded)
    d, e = join(pw), join(pw)
    next_task(d)
    e_task = next_task(e)
    Slot.objects.filter(pk=e_task.slot_id).update(lease_expires_at=clock.now())
    # ... rater A is excluded and their slots reopened
    Participation.objects.filter(pk=a.pk).update(excluded_at=clock.now(), exclusion_reasons="catch")
    participation_reopen_slots(participation_id=a.pk)

    # when
    row = next(r for r in monitor_experiments(study=study) if r.slug == "pw")

    # then
    in_quota = Response.objects.filter(task__experiment=pw, slot__isnull=False).count()
    assert late.late
    assert row.target == n_slots
    assert row.answers == in_quota == Slot.objects.filter(experiment=pw, is_answered=True).count()
    assert row.late == 1 and row.over_quota == int(late.over_quota)
    assert row.reopened == 2
    live = Slot.objects.filter(experiment=pw, is_answered=False, lease_expires_at__gt=clock.now())
    # D's task, and the next task the service handed B and C with their answers
    assert set(live.values_list("holder_id", flat=True)) == {b.pk, c.pk, d.pk}
    assert row.on_screen == 3
    assert row.stranded == 1  # E
    # in the last 5 minutes: C's answer and B's late one if it took a slot
    assert row.answers_last_window == in_quota
    assert row.answers_per_minute == pytest.approx(in_quota / 5)
    assert row.eta_seconds == round((n_slots - in_quota) / (in_quota / 5) * 60)
    assert (row.participations, row.excluded) == (5, 1)


def test_no_recent_answers_means_no_eta(clock):
    study = _study()
    answer_one(join(_pw(study)))
    clock.advance(10 * 60)
    row = next(r for r in monitor_experiments(study=study) if r.slug == "pw")
    assert (row.answers_per_minute, row.eta_seconds) == (0, None)


def test_rater_rows_filters_and_quality_figures():
    study = _study()
    pw, fc = _pw(study), study.experiments.get(slug="fc")
    link = join(pw)
    answer_one(link, response_ms=1200)
    crowd = join(fc, source=Rater.Source.PROLIFIC, worker_id="WORKER42",
                 session={"STUDY_ID": "s1", "SESSION_ID": "x1"})  # fmt: skip
    Participation.objects.filter(pk=crowd.pk).update(
        quality={
            "n_answers": 3,
            "median_ms": 800.0,
            "share_left_more": 0.9,
            "attention_accuracy": 0.5,
            "catch_accuracy": 1.0,
            "reasons": "attention;side_bias",
        }  # fmt: skip
    )
    flagged_only = join(pw)
    Participation.objects.filter(pk=flagged_only.pk).update(quality={"reasons": "too_fast"})
    Participation.objects.filter(pk=link.pk).update(
        excluded_at=link.created_at, exclusion_reasons="catch", quality={"reasons": ""}
    )

    rows, total = monitor_raters(study=study)
    assert total == 3 and len(rows) == 3
    by_id = {r.participation_id: r for r in rows}
    assert by_id[link.pk].external_id == "browser" and by_id[link.pk].source == "link"
    assert by_id[link.pk].answered == 1 and by_id[link.pk].exclusion_reasons == "catch"
    w = by_id[crowd.pk]
    assert (w.external_id, w.experiment, w.median_ms, w.share_left_more) == (
        "WORKER42",
        "fc",
        800.0,
        0.9,
    )
    assert (w.attention_accuracy, w.catch_accuracy, w.flags) == (
        0.5,
        1.0,
        ["attention", "side_bias"],
    )

    assert [r.participation_id for r in monitor_raters(study=study, only="excluded")[0]] == [
        link.pk
    ]
    flagged = {r.participation_id for r in monitor_raters(study=study, only="flagged")[0]}
    assert flagged == {link.pk, crowd.pk, flagged_only.pk}
    assert monitor_raters(study=study, experiment="fc")[1] == 1
    assert [r.participation_id for r in monitor_raters(study=study, search="worker4")[0]] == [
        crowd.pk
    ]
    public = str(link.rater.public_id)
    assert [r.participation_id for r in monitor_raters(study=study, search=public[:8])[0]] == [
        link.pk
    ]
    rows, total = monitor_raters(study=study, limit=1)
    assert (len(rows), total) == (1, 3)


def test_a_handful_of_queries_however_many_raters():
    study = _study()
    for experiment in study.experiments.all():
        for _ in range(4):
            answer_one(join(experiment))
    with CaptureQueriesContext(connection) as few:
        study_monitor(study=study)
    for experiment in study.experiments.all():
        for _ in range(4):
            answer_one(join(experiment))
    with CaptureQueriesContext(connection) as more:
        study_monitor(study=study)
    assert len(few) == len(more) <= 8


def _user(name: str, *, staff: bool = True, superuser: bool = False):
    User = get_user_model()
    return User.objects.create_user(
        name, f"{name}@example.invalid", "pw-123456", is_staff=staff, is_superuser=superuser
    )


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_json_shape_for_the_owner():
    study = _study()
    owner = _user("owner")
    study.created_by = owner
    study.save(update_fields=["created_by"])
    answer_one(join(_pw(study)))
    response = _client(owner).get(f"/researcher/studies/{study.pk}/monitor.json?only=bogus&limit=x")
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= {"study", "now", "totals", "experiments", "raters", "raters_total"}
    assert [e["slug"] for e in body["experiments"]] == ["pw", "fc"]
    assert set(body["experiments"][0]) >= {
        "answers", "target", "answers_per_minute", "eta_seconds", "on_screen", "stranded",
        "late", "over_quota", "reopened",
    }  # fmt: skip
    assert set(body["raters"][0]) >= {
        "rater_id", "source", "external_id", "experiment", "status", "answered", "target",
        "checks_answered", "checks_planned", "median_ms", "attention_accuracy",
        "catch_accuracy", "share_left_more", "flags", "excluded_at", "exclusion_reasons",
    }  # fmt: skip
    assert body["totals"]["answers"] == 1 and body["raters_total"] == 1
    page = _client(owner).get(f"/researcher/studies/{study.pk}/monitor/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f'data-monitor-url="/researcher/studies/{study.pk}/monitor.json"' in html
    assert "researcher/monitor.js" in html and '<th scope="col">Stranded' not in html  # abbr'd
    assert "<caption" in html


def test_other_staff_get_404_and_anonymous_the_login():
    study = _study()
    stranger = _user("stranger")
    for url in (
        f"/researcher/studies/{study.pk}/monitor/",
        f"/researcher/studies/{study.pk}/monitor.json",
    ):
        assert _client(stranger).get(url).status_code == 404
        assert Client().get(url).status_code == 302
        assert _client(_user(f"boss{len(url)}", superuser=True)).get(url).status_code == 200
    assert _client(stranger).get("/researcher/studies/999999/monitor.json").status_code == 404
