"""Onboarding per experiment: consent, instructions per kind, example, practice, the preview."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from apps.pipeline.models import Stimulus
from apps.recruitment.models import Provider, Publication
from apps.recruitment.selectors import prolific_complete_url
from apps.studies import onboarding as ob
from apps.studies.exports import response_csv_lines
from apps.studies.models import (
    Assignment,
    Experiment,
    Participation,
    PracticeAnswer,
    Rater,
    Response,
    Slot,
    Study,
    Task,
)
from apps.studies.services import experiment_create, study_create, study_launch
from tests.factories import family_with_stimuli

pytestmark = pytest.mark.django_db

PID = "5f3e9a1b2c4d6e8f0a1b2c3d"
SESSION = "60aa11bb22cc33dd44ee55ff"
MTURK = "?workerId=A2WORKER0001&assignmentId=3ASSIGNMENT0001&hitId=3HIT0001"
PROLIFIC = f"?PROLIFIC_PID={PID}&STUDY_ID={PID}&SESSION_ID={SESSION}"


def onboarding_study(*, launch: bool = True, slug: str = "ob", **kwargs) -> Study:
    """Three experiments (pairwise heat, pairwise occlusion, forced choice) with spare images
    for the example and two practice trials; checks off unless asked for."""
    family = family_with_stimuli(slug=f"fam-{slug}", images_per_class=4)
    study = study_create(name="Onboarding", slug=slug, family=family, seed=3)
    common = {
        "images_per_class": 2,
        "answers_per_task": 2,
        "tasks_per_rater": 3,
        "practice_trials": 2,
        "attention_checks": 0,
        "probe_percent": 0,
        "catch_percent": 0,
        **kwargs,
    }
    for slug_, kind, stimulus_kind in (
        ("pwh", Experiment.Kind.PAIRWISE, "heat"),
        ("pwo", Experiment.Kind.PAIRWISE, "occlusion"),
        ("fc", Experiment.Kind.FORCED_CHOICE, "occlusion"),
    ):
        pairwise = kind == Experiment.Kind.PAIRWISE
        experiment_create(
            study=study,
            slug=slug_,
            name=slug_,
            kind=kind,
            scale_points=5 if pairwise else None,
            stimulus_kind=stimulus_kind,
            pairs=[["cpr1", "cpr8"]] if pairwise else [],
            conditions=[] if pairwise else ["cpr1", "cpr8"],
            **common,
        )
    return study_launch(study=study) if launch else study


def _experiment(study: Study, slug: str) -> Experiment:
    return Experiment.objects.select_related("study__family").get(study=study, slug=slug)


def _text(response) -> str:
    return response.content.decode()


def _visible(html: str) -> str:
    """The page's words, without tags (class names like "predicted" contain "red")."""
    return re.sub(r"<[^>]+>", " ", html)


def _rows() -> tuple[int, ...]:
    return (
        Rater.objects.count(),
        Participation.objects.count(),
        Assignment.objects.count(),
        Response.objects.count(),
        PracticeAnswer.objects.count(),
        Slot.objects.filter(holder__isnull=False).count(),
    )


def _joined(code: str, query: str = "") -> tuple[Client, str]:
    """A rater who consents; returns their client and the token (``?t=``) if in the URL."""
    client = Client()
    client.get(f"/r/{code}/{query}")
    joined = client.post(f"/r/{code}/{query}", {"consent": "yes"})
    assert joined.status_code == 302, _text(joined)[:300]
    token = parse_qs(urlparse(joined["Location"]).query).get("t", [""])[0]
    return client, token


# -- instructions per kind and stimulus kind ------------------------------------------------


def test_the_defaults_fit_the_experiment_kind_and_stimulus_kind():
    study = onboarding_study()
    heat = _visible(_text(Client().get(f"/r/{_experiment(study, 'pwh').code}/")))
    assert re.search(r"\bred\b", heat) and re.search(r"\bblue\b", heat)
    assert "Most important" in heat and "no right or wrong answers" in heat
    occlusion_html = _text(Client().get(f"/r/{_experiment(study, 'pwo').code}/"))
    occlusion = _visible(occlusion_html)
    assert not re.search(r"\b(red|blue)\b", occlusion, re.IGNORECASE)
    assert 'id="legend"' not in occlusion_html and "the rest is black" in occlusion
    forced = _visible(_text(Client().get(f"/r/{_experiment(study, 'fc').code}/")))
    assert "right or wrong" not in forced.lower() and "I don&#x27;t know" in forced
    assert not re.search(r"\b(red|blue)\b", forced, re.IGNORECASE)
    # the legend stays on the heat-map task page only
    client, _ = _joined(_experiment(study, "pwh").code)
    Participation.objects.update(practice_done=2)
    assert 'id="legend"' in _text(client.get(f"/r/{_experiment(study, 'pwh').code}/task/"))


def test_the_researchers_texts_replace_the_defaults_but_keep_the_key_help():
    study = onboarding_study()
    experiment = _experiment(study, "pwo")
    Experiment.objects.filter(pk=experiment.pk).update(
        instructions="Look at the cats.\n\nThen decide.", consent_text="Our own consent words."
    )
    page = _text(Client().get(f"/r/{experiment.code}/"))
    assert "Look at the cats." in page and "Then decide." in page
    assert "Our own consent words." in page and "voluntary" not in page
    assert "which visible part better shows" not in page  # the default body is replaced
    assert "<kbd>1</kbd>" in page  # the key help stays


def test_the_start_page_counts_tasks_with_checks_and_estimates_the_time():
    study = onboarding_study(tasks_per_rater=20, attention_checks=2, probe_percent=10)
    experiment = _experiment(study, "fc")
    assert ob.task_count(experiment) == 20 + 2 + 2
    page = _text(Client().get(f"/r/{experiment.code}/"))
    assert 'id="n-tasks">24<' in page
    # 60 s reading + 24 tasks x 8 s + 2 practice trials x 16 s = 284 s -> 5 minutes
    assert ob.minutes_estimate(experiment) == 5 and 'id="minutes">5<' in page
    assert "voluntary" in page and "personal data" in page and "stop at any time" in page


# -- consent ------------------------------------------------------------------------------------


def test_consent_is_required_and_recorded():
    study = onboarding_study()
    code = _experiment(study, "pwh").code
    client = Client()
    client.get(f"/r/{code}/")
    refused = client.post(f"/r/{code}/")
    assert refused.status_code == 400 and 'id="consent-error"' in _text(refused)
    assert _rows() == (0, 0, 0, 0, 0, 0)
    client, _ = _joined(code)
    participation = Participation.objects.get()
    assert participation.consented_at is not None
    # returning: already consented, goes straight on without the box
    page = _text(client.get(f"/r/{code}/"))
    assert 'id="consent"' not in page and "Continue" in page
    assert client.post(f"/r/{code}/")["Location"] == f"/r/{code}/task/"


def test_declining_stores_nothing_and_ends_at_each_providers_place():
    study = onboarding_study()
    experiment = _experiment(study, "pwh")
    code = experiment.code
    for provider, extra in (
        (Provider.LINK, {"completion_redirect_url": "https://example.org/thanks"}),
        (Provider.PROLIFIC, {}),
    ):
        Publication.objects.create(
            study=study,
            experiment=experiment,
            provider=provider,
            title="t",
            description="d",
            places=5,
            **extra,
        )
    link = Client().post(f"/r/{code}/", {"decline": "1"})
    assert link.status_code == 200 and 'data-source="link"' in _text(link)
    assert "example.org/thanks" not in _text(link) and "close this page" in _text(link)
    prolific = Client().post(f"/r/{code}/{PROLIFIC}", {"decline": "1"})
    publication = Publication.objects.get(provider=Provider.PROLIFIC)
    assert prolific.status_code == 302
    assert prolific["Location"] == prolific_complete_url(publication.no_consent_code)
    mturk = _text(Client().post(f"/r/{code}/{MTURK}", {"decline": "1"}))
    assert "return the HIT" in mturk and "externalSubmit" not in mturk
    assert _rows() == (0, 0, 0, 0, 0, 0)


# -- example and practice -----------------------------------------------------------------------


@pytest.mark.parametrize("slug", ["pwh", "pwo", "fc"])
def test_the_example_and_practice_images_are_never_task_images(slug):
    study = onboarding_study()
    experiment = _experiment(study, slug)
    assert len(experiment.onboarding_images) == 3
    task_images = set(Task.objects.filter(experiment=experiment).values_list("image_id", flat=True))
    assert not task_images & set(experiment.onboarding_images)
    task_files = set()
    for task in Task.objects.filter(experiment=experiment).select_related(
        "image", "stimulus_a", "stimulus_b"
    ):
        task_files |= {task.image.file, task.stimulus_a.file}
        if task.stimulus_b is not None:
            task_files.add(task.stimulus_b.file)
    example = ob.example_presentation(experiment)
    trials = ob.practice_trials(experiment, seed=1)
    assert example is not None and len(trials) == 2
    shown = [example, *(t.presentation for t in trials)]
    urls = {v for p in shown for k, v in p.items() if k.endswith("_url")}
    assert urls and not any(url.endswith(f) for url in urls for f in task_files)
    page = _text(Client().get(f"/r/{experiment.code}/"))
    assert 'id="example"' in page
    if slug == "fc":  # the example reveals its true class
        assert 'id="example-answer"' in page
    else:  # the real maps of the first pair, never a rotated one
        left = Stimulus.objects.get(file=example["left_url"].rsplit("/media/", 1)[-1])
        assert left.catch == "" and left.image_id == experiment.onboarding_images[0]


def test_pairwise_practice_shows_a_real_map_against_its_rotation_with_feedback():
    study = onboarding_study()
    experiment = _experiment(study, "pwo")
    [trial, _] = ob.practice_trials(experiment, seed=5)
    files = {
        k: Stimulus.objects.get(file=v.rsplit("/media/", 1)[-1])
        for k, v in trial.presentation.items()
        if k in ("left_url", "right_url")
    }
    real = files[f"{trial.real_side}_url"]
    turned = files["right_url" if trial.real_side == "left" else "left_url"]
    assert real.catch == "" and turned.catch == "rot180" and real.variant_id == turned.variant_id
    right_choice = 0 if trial.real_side == "left" else 4
    assert trial.feedback(right_choice)[0] and not trial.feedback(2)[0]
    assert "upside down" in trial.feedback(2)[1]


def test_practice_comes_before_the_tasks_is_stored_once_and_counted_nowhere():
    study = onboarding_study()
    experiment = _experiment(study, "fc")
    code = experiment.code
    client, _ = _joined(code)
    assert client.get(f"/r/{code}/task/")["Location"] == f"/r/{code}/practice/"
    participation = Participation.objects.get()
    token = re.search(r'name="token" value="([^"]+)"', _text(client.get(f"/r/{code}/practice/")))
    assert token is not None
    trials = ob.practice_trials(experiment, seed=participation.pk)
    true_class = trials[0].true_class
    right = list(experiment.study.family.class_names).index(true_class)
    form = {"token": token.group(1), "number": "1", "choice": str(right)}
    first = client.post(f"/r/{code}/practice/", form)
    assert first["Location"] == f"/r/{code}/practice/?fb=1"
    client.post(f"/r/{code}/practice/", {**form, "choice": "0"})  # a resubmitted form
    answer = PracticeAnswer.objects.get()
    assert answer.correct is True and answer.choice == right
    feedback = _text(client.get(first["Location"]))
    assert 'id="feedback"' in feedback and f"this photo shows a {true_class}" in feedback
    assert client.get(f"/r/{code}/task/")["Location"] == f"/r/{code}/practice/"
    client.post(f"/r/{code}/practice/", {**form, "number": "2", "choice": "10"})  # "I don't know"
    participation.refresh_from_db()
    assert participation.practice_done == 2 and participation.answered == 0
    assert PracticeAnswer.objects.filter(correct=False).count() == 1
    assert client.get(f"/r/{code}/task/").status_code == 200
    assert not Response.objects.exists() and not Slot.objects.filter(is_answered=True).exists()
    assert len(list(response_csv_lines(study=study))) == 1  # the header only
    # a forged form without the rater's token stores nothing
    forged = Client().post(f"/r/{code}/practice/", {"number": "1", "choice": "1"})
    assert forged.status_code in (302, 403) and PracticeAnswer.objects.count() == 2


def test_mturk_practice_keeps_the_token_in_the_url():
    study = onboarding_study()
    code = _experiment(study, "pwh").code
    client, token = _joined(code, MTURK)
    frame = Client()  # MTurk's frame sends no cookies
    practice = frame.get(f"/r/{code}/task/", {"t": token})["Location"]
    assert urlparse(practice).path == f"/r/{code}/practice/"
    assert parse_qs(urlparse(practice).query)["t"] == [token]
    page = _text(frame.get(practice))
    assert f'action="{practice}"'.replace("&", "&amp;") in page
    posted = frame.post(practice, {"token": token, "number": 1, "choice": 0})["Location"]
    assert posted == f"{practice}&fb=1"
    assert 'id="feedback"' in _text(frame.get(posted))
    assert PracticeAnswer.objects.count() == 1


def test_the_task_page_sends_a_rater_without_consent_back_to_the_start():
    study = onboarding_study(practice_trials=0)
    code = _experiment(study, "pwh").code
    client, _ = _joined(code)
    assert client.get(f"/r/{code}/task/").status_code == 200
    Participation.objects.update(consented_at=None)
    assert client.get(f"/r/{code}/task/")["Location"] == f"/r/{code}/"


# -- the researcher's preview ---------------------------------------------------------------


def _staff(study: Study) -> Client:
    """A researcher who collaborates on ``study`` (the preview is for its researchers)."""
    user = get_user_model().objects.create_user("staff", password="pw-123456", is_staff=True)
    study.collaborators.add(user)
    client = Client()
    client.force_login(user)
    return client


def _walk_preview(client: Client, code: str) -> list[str]:
    pages = [_text(client.get(f"/r/{code}/preview/"))]
    assert client.post(f"/r/{code}/preview/").status_code == 400  # consent still required
    step = client.post(f"/r/{code}/preview/", {"consent": "yes"})["Location"]
    assert step == f"/r/{code}/preview/practice/1/"
    for number in (1, 2):
        pages.append(_text(client.get(f"/r/{code}/preview/practice/{number}/")))
        feedback = _text(client.post(f"/r/{code}/preview/practice/{number}/", {"choice": 0}))
        assert 'id="feedback"' in feedback
        pages.append(feedback)
    number = 1
    while True:
        page = client.get(f"/r/{code}/preview/task/{number}/")
        assert page.status_code == 200
        pages.append(_text(page))
        moved = client.post(f"/r/{code}/preview/task/{number}/", {"choice": 0})["Location"]
        if moved.endswith("/preview/done/"):
            break
        number += 1
    pages.append(_text(client.get(moved)))
    assert all("Preview — nothing is stored" in page for page in pages)
    return pages


@pytest.mark.parametrize("launched", [True, False])
def test_the_preview_walks_the_whole_experience_and_stores_nothing(launched):
    study = onboarding_study(
        launch=launched, attention_checks=1, probe_percent=30, catch_percent=20
    )
    experiment = _experiment(study, "pwh")
    client = _staff(study)
    before = (_rows(), Task.objects.count(), Slot.objects.count())
    pages = _walk_preview(client, experiment.code)
    assert (_rows(), Task.objects.count(), Slot.objects.count()) == before
    if not launched:
        assert Task.objects.count() == 0
    tasks = "\n".join(p for p in pages if 'id="hidden-facts"' in p)
    assert "For this pair, please choose \u201c" in tasks and "Attention check" in tasks
    assert "Catch trial" in tasks and "Consistency probe" in tasks and "cpr1" in tasks
    fc = _experiment(study, "fc")
    fc_pages = _walk_preview(client, fc.code)
    assert any("For this photo, please choose" in page for page in fc_pages)
    assert _rows() == before[0]


def test_the_preview_and_its_admin_link_are_for_staff_only(admin_client_):
    study = onboarding_study()
    experiment = _experiment(study, "pwh")
    preview = f"/r/{experiment.code}/preview/"
    assert Client().get(preview)["Location"].startswith("/admin/login/")
    user = get_user_model().objects.create_user("rater", password="pw-123456")
    plain = Client()
    plain.force_login(user)
    assert plain.get(preview).status_code == 302
    changelist = _text(admin_client_.get("/admin/studies/experiment/"))
    assert preview in changelist and "Preview as a rater" in changelist
    change = _text(admin_client_.get(f"/admin/studies/experiment/{experiment.pk}/change/"))
    assert preview in change and "practice_trials" in change.replace("-", "_")
    assert admin_client_.get(preview).status_code == 200
    # another researcher's staff account may not see this study's hidden conditions
    other = get_user_model().objects.create_user("other", password="pw-123456", is_staff=True)
    outsider = Client()
    outsider.force_login(other)
    assert outsider.get(preview).status_code == 404
    assert outsider.get(f"/r/{experiment.code}/preview/task/1/").status_code == 404
