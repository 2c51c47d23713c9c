"""The study page in the admin: one page per study, presets, the design summary, permissions."""

from __future__ import annotations

import json
import math
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from apps.recruitment.services import publications_prepare
from apps.studies.models import Experiment, Study
from apps.studies.presets import answers_needed, design_summary, preset_apply, preset_plan
from apps.studies.services import study_create
from tests.factories import family_with_stimuli

pytestmark = pytest.mark.django_db


def _draft(slug="sp", preset="experiment1", **family_kwargs) -> Study:
    family = family_with_stimuli(slug=f"fam-{slug}", images_per_class=2, **family_kwargs)
    study = study_create(name=f"Study {slug}", slug=slug, family=family, seed=3)
    if preset:
        preset_apply(study=study, preset=preset, images_per_class=1, tasks_per_rater=20)
    return study


def _page(client, study: Study, query: str = "") -> str:
    response = client.get(f"/admin/studies/study/{study.pk}/change/{query}")
    assert response.status_code == 200
    return response.content.decode()


def _staff(username: str) -> Client:
    user = get_user_model().objects.create_user(username, f"{username}@x.invalid", "pw-123456",
                                                is_staff=True)  # fmt: skip
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label__in=["studies", "recruitment"])
    )
    client = Client()
    client.force_login(user)
    client.user = user
    return client


def test_the_study_page_shows_experiments_maps_buttons_links_and_monitor(admin_client_):
    study = _draft()
    experiment = study.experiments.get()
    page = _page(admin_client_, study)
    # the experiment with its kind and pairs in CPRs
    assert "Pairwise comparison (Likert)" in page and "5 points" in page
    for pair in ("CPR 1 vs CPR 2", "CPR 1 vs CPR 8", "CPR 4 vs CPR 8"):
        assert pair in page
    # a strip of real maps, buttons and links
    assert page.count('class="map-strip"') == 1 and "/media/" in page
    assert f"/r/{experiment.code}/preview/" in page
    assert f"/admin/studies/study/{study.pk}/launch/" in page
    assert f"/admin/studies/study/{study.pk}/preset/" in page
    assert f"/admin/studies/study/{study.pk}/responses.csv" in page
    assert f"/studies/{study.slug}/results/" in page
    assert 'id="monitor"' in page  # researcher/_monitor.html
    assert 'id="design-summary"' in page
    # the panel gives a draft no rater links yet and no publish button
    assert 'class="rater-link"' not in page and "/recruitment/publication/publish/" not in page


def test_launch_and_close_ask_first_pause_and_resume_are_one_click(admin_client_):
    study = _draft()
    base = f"/admin/studies/study/{study.pk}"
    confirm = admin_client_.get(f"{base}/launch/").content.decode()
    assert "Launch" in confirm and "tasks" in confirm and 'name="confirm"' in confirm
    study.refresh_from_db()
    assert study.status == Study.Status.DRAFT  # the confirmation page changes nothing
    admin_client_.post(f"{base}/launch/")  # no confirm: nothing happens either
    study.refresh_from_db()
    assert study.status == Study.Status.DRAFT

    response = admin_client_.post(f"{base}/launch/", {"confirm": "yes"}, follow=True)
    study.refresh_from_db()
    assert study.status == Study.Status.LIVE
    page = response.content.decode()
    assert "is live" in page
    code = study.experiments.get().code
    assert f'href="http://127.0.0.1:8000/r/{code}/"' in page  # the rater link
    assert f"/admin/recruitment/publication/publish/{study.pk}/" in page
    assert 'id="design-summary"' not in page and 'id="pause"' in page

    assert admin_client_.get(f"{base}/pause/").status_code == 405
    admin_client_.post(f"{base}/pause/")
    study.refresh_from_db()
    assert study.status == Study.Status.PAUSED
    admin_client_.post(f"{base}/resume/")
    study.refresh_from_db()
    assert study.status == Study.Status.LIVE

    assert "cannot be opened again" in admin_client_.get(f"{base}/close/").content.decode()
    study.refresh_from_db()
    assert study.status == Study.Status.LIVE
    admin_client_.post(f"{base}/close/", {"confirm": "yes"})
    study.refresh_from_db()
    assert study.status == Study.Status.CLOSED
    response = admin_client_.post(f"{base}/resume/", follow=True)
    assert "cannot be resumed" in response.content.decode()


def test_paper_presets_map_onto_the_family_and_say_which_cpr_is_missing():
    family = family_with_stimuli(slug="fam-miss", images_per_class=1, cprs=[1, 2, 4, 16])
    one = preset_plan(preset="experiment1", family=family)
    (spec,) = one.experiments
    assert (spec.kind, spec.scale_points, spec.stimulus_kind) == ("pairwise", 5, "heat")
    assert spec.pairs == (
        ("cpr1", "cpr2"), ("cpr1", "cpr4"), ("cpr1", "cpr16"),
        ("cpr2", "cpr4"), ("cpr2", "cpr16"), ("cpr4", "cpr16"),
    )  # fmt: skip
    assert one.notes == [
        "CPR 8 used by the paper is missing from this family: using cpr16 (CPR 16), the nearest."
    ]
    two = preset_plan(preset="experiment2", family=family)
    (spec,) = two.experiments
    assert (spec.kind, spec.scale_points, spec.stimulus_kind) == (
        "forced_choice",
        None,
        "occlusion",
    )
    assert spec.conditions == ("cpr1", "cpr2", "cpr4", "cpr16")  # CPR 8 and 32 both -> cpr16
    assert any("CPR 32 dropped (repeats cpr16)" in note for note in two.notes)
    pre = preset_plan(preset="prestudy", family=family)
    assert [(s.slug, s.stimulus_kind, s.scale_points, s.pairs) for s in pre.experiments] == [
        ("prestudy-heat", "heat", 3, (("cpr1", "cpr2"), ("cpr1", "cpr16"))),
        ("prestudy-occlusion", "occlusion", 3, (("cpr1", "cpr2"), ("cpr1", "cpr16"))),
    ]
    assert preset_plan(preset="baseline-vs-each", family=family).experiments[0].pairs == (
        ("cpr1", "cpr2"), ("cpr1", "cpr4"), ("cpr1", "cpr16"),
    )  # fmt: skip
    assert len(preset_plan(preset="all-pairs", family=family).experiments[0].pairs) == 6
    single = preset_plan(preset="single", family=family, stimulus_kind="heat").experiments[0]
    assert (single.kind, single.stimulus_kind) == ("forced_choice", "heat")


def test_the_preset_page_creates_the_experiments_and_warns_about_missing_cprs(admin_client_):
    family = family_with_stimuli(slug="fam-pp", images_per_class=2, cprs=[1, 2, 4, 8, 16])
    study = study_create(name="Preset", slug="preset", family=family)
    url = f"/admin/studies/study/{study.pk}/preset/"
    page = admin_client_.get(url).content.decode()
    assert "16.00" in page and "95.0 %" in page  # CPRs with two decimals, accuracy in %
    assert "CPR 32 used by the paper is missing" in page
    response = admin_client_.post(
        url,
        {"preset": "prestudy", "images_per_class": "1", "answers_per_task": "5",
         "tasks_per_rater": "20"},
        follow=True,
    )  # fmt: skip
    page = response.content.decode()
    assert "Added Pre-study (heat-maps), Pre-study (occlusion-maps)" in page
    assert "CPR 32 used by the paper is missing from this family: using cpr16" in page
    made = {e.slug: e for e in study.experiments.all()}
    assert set(made) == {"prestudy-heat", "prestudy-occlusion"}
    assert made["prestudy-heat"].pairs == [["cpr1", "cpr2"], ["cpr1", "cpr16"]]
    assert made["prestudy-occlusion"].scale_points == 3
    assert made["prestudy-heat"].answers_per_task == 5
    # a second time: new slugs, nothing clashes
    admin_client_.post(url, {"preset": "prestudy", "images_per_class": "1",
                             "answers_per_task": "5", "tasks_per_rater": "20"})  # fmt: skip
    assert study.experiments.filter(slug="prestudy-heat-2").exists()


def test_the_preset_form_lists_every_error_at_once_in_plain_words(admin_client_):
    study = _draft(slug="pe", preset=None)
    url = f"/admin/studies/study/{study.pk}/preset/"
    page = admin_client_.post(
        url, {"images_per_class": "0", "answers_per_task": "x", "tasks_per_rater": ""}
    ).content.decode()
    for line in (
        "Design: choose one of the designs.",
        "Images per class: at least 1.",
        "Answers per task: enter a whole number.",
        "Tasks per rater: this is required.",
    ):
        assert line in page, line
    assert not study.experiments.exists()
    page = admin_client_.post(
        url, {"preset": "baseline-vs-each", "baseline": "cpr3", "images_per_class": "1",
              "answers_per_task": "5", "tasks_per_rater": "20"},
    ).content.decode()  # fmt: skip
    assert "Baseline (baseline vs each): cpr3 is not one of the choices." in page


def test_experiment_form_says_constraint_errors_in_plain_words(admin_client_):
    study = _draft(slug="ce", preset=None)
    form = {
        "study": study.pk, "slug": "e", "name": "E", "position": "0", "kind": "forced_choice",
        "scale_points": "5", "stimulus_kind": "occlusion", "method": "gradcam", "pairs": "[]",
        "conditions": '["cpr1"]', "images_per_class": "1", "answers_per_task": "0",
        "tasks_per_rater": "10", "one_task_per_image": "on", "lease_seconds": "5",
        "min_viewing_ms": "0", "min_screen_width": "0",
    }  # fmt: skip
    page = admin_client_.post("/admin/studies/experiment/add/", form).content.decode()
    assert "Scale points: leave it empty for forced choice." in page
    assert "Answers per task: at least 1." in page
    assert "Lease seconds: at least 10 seconds." in page
    assert "Constraint" not in page and "is violated" not in page
    page = admin_client_.post(
        "/admin/studies/experiment/add/",
        {**form, "kind": "pairwise", "scale_points": "", "answers_per_task": "5",
         "lease_seconds": "60", "pairs": '[["cpr1", "cpr2"]]'},
    ).content.decode()  # fmt: skip
    assert "Scale points: a pairwise experiment needs 3, 5 or 7 points" in page
    assert "is violated" not in page
    assert not Experiment.objects.exists()


def test_the_design_summary_counts_tasks_answers_raters_cost_and_power(admin_client_):
    study = _draft(slug="ds")  # Experiment 1, 10 classes x 1 image, 6 pairs, 5 answers
    (row,) = design_summary(study=study, half_width=0.05, reward=Decimal("2.00"))
    assert row.error == ""
    assert row.catch_tasks == 6 and row.tasks == 60 + 6  # 10 % catch trials
    assert row.answers == 66 * 5
    assert row.raters == math.ceil(66 * 5 / 20) == 17
    assert row.answers_per_cpr == {"cpr1": 150, "cpr2": 150, "cpr4": 150, "cpr8": 150}
    assert row.needed_per_cpr == answers_needed(half_width=0.05, scale_points=5) == 6147
    assert not row.enough
    costs = {c.provider: c for c in row.costs}
    assert costs["link"].total == "34.00"
    assert costs["prolific"].total == "45.22 GBP"  # 34.00 + 33 % fee
    assert "https" in costs["mturk"].error  # MTurk needs an HTTPS address
    assert answers_needed(half_width=0.05, scale_points=None) == 385
    assert answers_needed(half_width=0.05, scale_points=3) == 1537

    page = _page(admin_client_, study, "?half_width=0.1&reward=2.00")
    assert '<td class="n-tasks">66</td>' in page and '<td class="n-answers">330</td>' in page
    assert '<td class="n-raters">17</td>' in page
    assert '<td class="n-needed">1537</td>' in page
    assert "45.22 GBP" in page


def test_the_design_summary_shows_why_an_experiment_cannot_be_planned(admin_client_):
    study = _draft(slug="dx")
    study.experiments.update(images_per_class=5)  # the family has 2 per class
    page = _page(admin_client_, study)
    assert 'class="errornote summary-error"' in page


def test_only_owner_collaborators_and_superusers_see_a_study(admin_client_):
    owner, helper, other = _staff("owner"), _staff("helper"), _staff("other")
    study = _draft(slug="perm", preset=None)
    study.created_by = owner.user
    study.save()
    study.collaborators.add(helper.user)
    preset_apply(study=study, preset="experiment1", images_per_class=1)
    experiment = study.experiments.get()
    base = f"/admin/studies/study/{study.pk}"
    for client in (owner, helper, admin_client_):
        assert client.get(f"{base}/change/").status_code == 200
        assert study.name in client.get("/admin/studies/study/").content.decode()
    for url in (
        f"{base}/change/", f"{base}/launch/", f"{base}/close/", f"{base}/preset/",
        f"{base}/responses.csv", f"/admin/studies/experiment/{experiment.pk}/change/",
        f"/admin/recruitment/publication/publish/{study.pk}/",
    ):  # fmt: skip
        assert other.get(url).status_code == 404, url
    assert other.post(f"{base}/launch/", {"confirm": "yes"}).status_code == 404
    assert study.name not in other.get("/admin/studies/study/").content.decode()
    assert "exp1" not in other.get("/admin/studies/experiment/").content.decode()
    for url in ("/admin/studies/task/", "/admin/studies/participation/",
                "/admin/studies/assignment/", "/admin/studies/response/",
                "/admin/recruitment/publication/", "/admin/recruitment/submission/",
                "/admin/recruitment/externalcall/"):  # fmt: skip
        assert other.get(url).status_code == 200, url
    # the collaborator may run it
    helper.post(f"{base}/launch/", {"confirm": "yes"})
    study.refresh_from_db()
    assert study.status == Study.Status.LIVE
    assert study.experiments.get().tasks.exists()
    publications_prepare(study=study, provider="link")
    for url in ("/admin/studies/task/", "/admin/studies/experiment/",
                "/admin/recruitment/publication/"):  # fmt: skip
        assert helper.get(url).context["cl"].result_count > 0, url
        assert other.get(url).context["cl"].result_count == 0, url
    assert admin_client_.get("/admin/recruitment/publication/").context["cl"].result_count == 1


def test_the_study_form_lists_inline_errors_in_plain_words(admin_client_):
    study = _draft(slug="ie")
    data = {
        "name": study.name, "slug": study.slug, "description": "", "family": study.family_id,
        "seed": "3", "experiments-TOTAL_FORMS": "1", "experiments-INITIAL_FORMS": "1",
        "experiments-MIN_NUM_FORMS": "0", "experiments-MAX_NUM_FORMS": "1000",
    }  # fmt: skip
    experiment = study.experiments.get()
    for name in ("slug", "name", "position", "kind", "stimulus_kind", "method", "pairs",
                 "conditions", "images_per_class", "answers_per_task", "tasks_per_rater",
                 "lease_seconds", "min_viewing_ms", "min_screen_width"):  # fmt: skip
        value = getattr(experiment, name)
        data[f"experiments-0-{name}"] = json.dumps(value) if isinstance(value, list) else value
    data.update({"experiments-0-id": experiment.pk, "experiments-0-study": study.pk,
                 "experiments-0-scale_points": "4", "experiments-0-answers_per_task": "0"})  # fmt: skip
    response = admin_client_.post(f"/admin/studies/study/{study.pk}/change/", data)
    page = response.content.decode()
    assert response.status_code == 200
    assert 'id="plain-errors"' in page
    assert "Experiment 1: Scale points: a pairwise experiment needs 3, 5 or 7 points" in page
    assert "is violated" not in page


def test_a_new_study_belongs_to_its_creator_and_takes_collaborators(admin_client_):
    owner, helper = _staff("maker"), _staff("friend")
    family = family_with_stimuli(slug="fam-new", images_per_class=1)
    page = owner.get("/admin/studies/study/add/").content.decode()
    assert 'name="collaborators"' in page and "selectfilter" in page.lower()
    response = owner.post(
        "/admin/studies/study/add/",
        {"name": "Mine", "slug": "mine", "description": "", "family": family.pk, "seed": "0",
         "collaborators": [helper.user.pk], "experiments-TOTAL_FORMS": "0",
         "experiments-INITIAL_FORMS": "0", "experiments-MIN_NUM_FORMS": "0",
         "experiments-MAX_NUM_FORMS": "1000"},
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:3000]
    study = Study.objects.get(slug="mine")
    assert study.created_by == owner.user
    assert list(study.collaborators.all()) == [helper.user]
    assert helper.get(f"/admin/studies/study/{study.pk}/change/").status_code == 200
