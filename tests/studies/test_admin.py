from __future__ import annotations

import pytest

from apps.pipeline.models import PipelineJob
from apps.studies.models import Experiment, Study
from tests.factories import family_with_stimuli
from tests.studies.helpers import launched_study

pytestmark = pytest.mark.django_db


def _study_form(family, **experiment) -> dict:
    data = {
        "name": "Admin study",
        "slug": "admin-study",
        "description": "",
        "family": family.pk,
        "seed": 0,
        "experiments-TOTAL_FORMS": "1",
        "experiments-INITIAL_FORMS": "0",
        "experiments-MIN_NUM_FORMS": "0",
        "experiments-MAX_NUM_FORMS": "1000",
        "experiments-0-slug": "e1",
        "experiments-0-name": "E1",
        "experiments-0-position": "0",
        "experiments-0-kind": "pairwise",
        "experiments-0-scale_points": "5",
        "experiments-0-stimulus_kind": "heat",
        "experiments-0-method": "gradcam",
        "experiments-0-pairs": '[["cpr1", "cpr2"]]',
        "experiments-0-conditions": "[]",
        "experiments-0-images_per_class": "1",
        "experiments-0-answers_per_task": "5",
        "experiments-0-tasks_per_rater": "10",
        "experiments-0-one_task_per_image": "on",
        "experiments-0-lease_seconds": "1800",
        "experiments-0-min_viewing_ms": "0",
        "experiments-0-min_screen_width": "0",
        "experiments-0-instructions": "",
    }
    data.update({f"experiments-0-{k}": v for k, v in experiment.items()})
    return data


def test_admin_refuses_an_experiment_with_an_unknown_variant(admin_client_):
    family = family_with_stimuli(slug="adm1", images_per_class=1)
    response = admin_client_.post(
        "/admin/studies/study/add/", _study_form(family, pairs='[["cpr1", "cpr3"]]')
    )
    assert response.status_code == 200
    assert "unknown variant(s) cpr3" in response.content.decode()
    assert not Study.objects.exists()


def test_admin_warns_when_an_experiment_may_repeat_images(admin_client_):
    family = family_with_stimuli(slug="adm3", images_per_class=1)
    form = _study_form(family)
    del form["experiments-0-one_task_per_image"]  # an unticked checkbox
    response = admin_client_.post("/admin/studies/study/add/", form, follow=True)
    assert "may show a rater the same source image" in response.content.decode()
    assert Experiment.objects.get().one_task_per_image is False
    quiet = admin_client_.post(
        "/admin/studies/study/add/", {**_study_form(family), "slug": "other"}, follow=True
    )
    assert "may show a rater the same source image" not in quiet.content.decode()


def test_admin_pauses_resumes_and_closes_a_study(admin_client_):
    study = launched_study()

    def act(action: str) -> str:
        admin_client_.post(
            "/admin/studies/study/", {"action": action, "_selected_action": [study.pk]}
        )
        study.refresh_from_db()
        return study.status

    assert act("pause") == Study.Status.PAUSED
    assert act("resume") == Study.Status.LIVE
    assert act("close") == Study.Status.CLOSED
    response = admin_client_.post(
        "/admin/studies/study/", {"action": "resume", "_selected_action": [study.pk]}, follow=True
    )
    assert "cannot be resumed" in response.content.decode()
    assert study.status == Study.Status.CLOSED


def test_admin_creates_and_launches_a_study_and_shows_links(admin_client_):
    # 2 images per class, 1 shown: spare images for the worked example and practice
    family = family_with_stimuli(slug="adm2", images_per_class=2)
    response = admin_client_.post("/admin/studies/study/add/", _study_form(family))
    assert response.status_code == 302, response.content.decode()[:3000]
    study = Study.objects.get(slug="admin-study")
    admin_client_.post(
        "/admin/studies/study/", {"action": "launch", "_selected_action": [study.pk]}
    )
    study.refresh_from_db()
    assert study.status == Study.Status.LIVE
    tasks = Experiment.objects.get(study=study).tasks
    assert tasks.filter(is_catch=False).count() == 10
    assert tasks.filter(is_catch=True).count() == 1  # the default 10 % catch trials
    page = admin_client_.get(f"/admin/studies/study/{study.pk}/change/").content.decode()
    assert f"/r/{study.experiments.get().code}/" in page


def test_launched_study_experiments_are_read_only(admin_client_):
    study = launched_study()
    page = admin_client_.get(f"/admin/studies/study/{study.pk}/change/").content.decode()
    assert 'name="experiments-0-pairs"' not in page


def test_admin_pages_render(admin_client_):
    launched_study()
    PipelineJob.objects.create(family=Study.objects.get().family, status="failed", error="boom")
    for url in [
        "/admin/",
        "/admin/pipeline/pipelinejob/",
        "/admin/pipeline/modelfamily/",
        "/admin/pipeline/stimulus/",
        "/admin/studies/study/",
        "/admin/studies/experiment/",
        "/admin/studies/task/",
        "/admin/studies/response/",
        "/admin/pipeline/sourceimage/",
    ]:
        assert admin_client_.get(url).status_code == 200, url


def test_a_launched_experiment_is_read_only_in_its_own_admin_page(admin_client_):
    study = launched_study()
    experiment = study.experiments.get(slug="pw")
    url = f"/admin/studies/experiment/{experiment.pk}/change/"
    page = admin_client_.get(url).content.decode()
    assert 'name="lease_seconds"' not in page and 'name="tasks_per_rater"' not in page
    admin_client_.post(url, {"lease_seconds": "20", "tasks_per_rater": "1"})
    experiment.refresh_from_db()
    assert experiment.tasks_per_rater == 5 and experiment.lease_seconds == 1800


def test_admin_sets_the_rater_page_options(admin_client_):
    family = family_with_stimuli(slug="adm-page", images_per_class=1)
    response = admin_client_.post(
        "/admin/studies/study/add/",
        _study_form(family, min_viewing_ms="1500", min_screen_width="768"),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    experiment = Experiment.objects.get()
    assert (experiment.min_viewing_ms, experiment.min_screen_width) == (1500, 768)
