"""Families, studies (visibility, detail), the life-cycle actions and progress."""

from __future__ import annotations

from apps.studies.models import Study
from apps.studies.selectors import experiment_progress
from apps.studies.services import study_create
from tests.api.conftest import make_user, token_client
from tests.studies.helpers import answer_one, join


def test_families_list_and_detail_show_the_variants(api, study):
    # given a family imported by the pipeline (the study's)
    # when the researcher lists and opens it
    listed = api.get("/api/v1/families/")
    detail = api.get(f"/api/v1/families/{study.family.slug}/")
    # then the variants come with their CPRs and accuracy, lowest CPR first
    assert listed.status_code == 200
    assert [f["slug"] for f in listed.json()] == [study.family.slug]
    variants = detail.json()["variants"]
    assert [v["label"] for v in variants] == ["cpr1", "cpr2", "cpr4", "cpr8"]
    assert set(variants[0]) == {
        "label", "cpr_target", "cpr_measured", "conv_sparsity", "test_accuracy"
    }  # fmt: skip
    assert variants[1]["cpr_target"] == 2.0


def test_an_unknown_family_is_404(api):
    response = api.get("/api/v1/families/nope/")
    assert response.status_code == 404
    assert response.json()["message"] == "No model family 'nope'."


def test_the_list_holds_only_visible_studies(api, researcher, study, others_study):
    # given a draft study shared with the researcher
    shared = study_create(name="Shared", slug="shared", family=study.family, seed=1)
    shared.collaborators.add(researcher)
    # when they list studies
    slugs = [s["slug"] for s in api.get("/api/v1/studies/").json()]
    # then their own and the shared one, never the other researcher's
    assert sorted(slugs) == ["mine", "shared"]


def test_a_collaborator_sees_and_runs_the_study(study, others_study):
    # given a researcher added as collaborator to another researcher's study
    carol = make_user("carol")
    others_study.collaborators.add(carol)
    client = token_client(carol)
    # then they see it in the list, open it and may pause it
    assert [s["slug"] for s in client.get("/api/v1/studies/").json()] == ["theirs"]
    assert client.get("/api/v1/studies/theirs/").status_code == 200
    assert client.post("/api/v1/studies/theirs/pause/").json()["status"] == "paused"
    assert client.get("/api/v1/studies/mine/").status_code == 404


def test_a_superuser_sees_every_study(study, others_study):
    root = token_client(make_user("root", superuser=True))
    assert sorted(s["slug"] for s in root.get("/api/v1/studies/").json()) == ["mine", "theirs"]
    assert root.get("/api/v1/studies/theirs/progress/").status_code == 200


def test_the_detail_has_the_experiments(api, study):
    body = api.get(f"/api/v1/studies/{study.slug}/").json()
    assert body["status"] == "live"
    assert body["owner"] == "ada"
    assert body["family"] == study.family.slug
    assert [e["slug"] for e in body["experiments"]] == ["pw", "fc"]
    pairwise = body["experiments"][0]
    assert pairwise["kind"] == "pairwise" and pairwise["scale_points"] == 5
    assert pairwise["pairs"] == [["cpr1", "cpr2"], ["cpr4", "cpr1"]]
    code = study.experiments.get(slug="pw").code
    assert pairwise["code"] == code and pairwise["rater_url"].endswith(f"/r/{code}/")


def test_pause_resume_close_change_the_state(api, study):
    url = f"/api/v1/studies/{study.slug}"
    assert api.post(f"{url}/pause/").json()["status"] == "paused"
    assert Study.objects.get(pk=study.pk).status == "paused"
    assert api.post(f"{url}/resume/").json()["status"] == "live"
    closed = api.post(f"{url}/close/").json()
    assert closed["status"] == "closed" and closed["closed_at"]
    assert Study.objects.get(pk=study.pk).status == "closed"


def test_launch_opens_a_draft_study(api, researcher, study):
    # given a draft study with an experiment (copied design of the launched one)
    draft = study_create(name="Draft", slug="draft", family=study.family, seed=3)
    draft.created_by = researcher
    draft.save(update_fields=["created_by"])
    experiment = study.experiments.get(slug="fc")
    experiment.pk, experiment.study, experiment.code = None, draft, "draftcode1"
    experiment.save()
    # when the researcher launches it
    response = api.post("/api/v1/studies/draft/launch/")
    # then it is live with tasks generated
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "live" and response.json()["launched_at"]
    assert experiment_progress(study=draft)[0].n_tasks > 0


def test_a_refused_transition_is_409_with_the_services_message(api, study):
    url = f"/api/v1/studies/{study.slug}"
    # given a closed study
    api.post(f"{url}/close/")
    # when the researcher pauses it, then launches it
    paused = api.post(f"{url}/pause/")
    launched = api.post(f"{url}/launch/")
    # then both are refused with the service's own message, and nothing changed
    assert paused.status_code == 409
    assert paused.json() == {
        "message": "Study 'mine' is closed; it cannot be paused.", "code": "error", "extra": {}
    }  # fmt: skip
    assert launched.status_code == 409
    assert launched.json()["message"] == "Study 'mine' is closed and cannot be launched again."
    assert Study.objects.get(pk=study.pk).status == "closed"


def test_launching_a_study_without_experiments_is_400(api, researcher, study):
    empty = study_create(name="Empty", slug="empty", family=study.family, seed=3)
    empty.created_by = researcher
    empty.save(update_fields=["created_by"])
    response = api.post("/api/v1/studies/empty/launch/")
    assert response.status_code == 400
    assert response.json()["message"] == "Study 'empty' has no experiments to launch."


def test_progress_is_per_experiment(api, study):
    # given two answers in the pairwise experiment
    rater = join(study.experiments.get(slug="pw"))
    answer_one(rater)
    answer_one(rater)
    # when the researcher asks for progress
    body = api.get(f"/api/v1/studies/{study.slug}/progress/").json()
    # then each experiment has the selector's figures
    assert body["study"] == "mine" and body["status"] == "live"
    rows = {row["experiment"]: row for row in body["experiments"]}
    expected = {p.experiment.slug: p for p in experiment_progress(study=study)}
    assert rows.keys() == expected.keys() == {"pw", "fc"}
    assert rows["pw"]["n_answers"] == 2 and rows["fc"]["n_answers"] == 0
    for slug, row in rows.items():
        assert row["n_tasks"] == expected[slug].n_tasks
        assert row["n_slots"] == expected[slug].n_slots
        assert row["n_leased"] == expected[slug].n_leased
