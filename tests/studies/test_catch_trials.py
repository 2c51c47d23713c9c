"""Catch trials and the onboarding reserve, planned at launch.

Catch tasks are the experiment's ``catch_percent`` of its real tasks, with a
known answer (pairwise: a real map against the same map rotated 180 degrees;
forced choice: a lightly occluded photo), and must look like any other task
to a rater. The onboarding reserve keeps ``1 + practice_trials`` images that
no task shows.
"""

from __future__ import annotations

import io
import re
from collections import Counter

import pytest
from django.conf import settings
from django.test import RequestFactory
from django.urls import resolve
from PIL import Image
from scipy import stats

from apps.core.exceptions import ApplicationError
from apps.pipeline.models import SourceImage, Stimulus
from apps.studies.models import Assignment, Experiment, Slot, Study, Task
from apps.studies.services import experiment_create, study_create, study_launch
from apps.studies.services.generation import experiment_plan_tasks
from tests.factories import CLASS_NAMES, family_with_stimuli
from tests.studies.test_api import Rater_

pytestmark = pytest.mark.django_db

PAIRS = [["cpr1", "cpr2"], ["cpr4", "cpr1"]]
CONDITIONS = ["cpr1", "cpr8"]
N_CLASSES = 10


def _study(
    *,
    slug: str = "s",
    kind: str = "pw",
    family_images: int = 3,
    images_per_class: int = 2,
    seed: int = 7,
    family_kwargs: dict | None = None,
    **experiment_kwargs,
) -> Study:
    """A draft study with one experiment (pairwise heat or forced-choice occlusion)."""
    family = family_with_stimuli(
        slug=f"fam-{slug}", images_per_class=family_images, **(family_kwargs or {})
    )
    study = study_create(name=f"Study {slug}", slug=slug, family=family, seed=seed)
    common = {"images_per_class": images_per_class, "answers_per_task": 2, **experiment_kwargs}
    if kind == "pw":
        experiment_create(
            study=study, slug="pw", name="Pairwise", kind=Experiment.Kind.PAIRWISE,
            scale_points=5, stimulus_kind="heat", pairs=PAIRS, **common,
        )  # fmt: skip
    else:
        experiment_create(
            study=study, slug="fc", name="Forced choice", kind=Experiment.Kind.FORCED_CHOICE,
            stimulus_kind="occlusion", conditions=CONDITIONS, **common,
        )  # fmt: skip
    return study


def _launched(**kwargs) -> Experiment:
    study = study_launch(study=_study(**kwargs))
    return study.experiments.get()


@pytest.mark.parametrize("kind", ["pw", "fc"])
@pytest.mark.parametrize("percent", [0, 1, 10, 25, 50])
def test_catch_tasks_are_the_requested_share_of_the_real_ones(kind, percent):
    # given 10 classes x 2 task images: 40 real tasks (2 pairs, or 2 conditions, x 20 images)
    experiment = _launched(kind=kind, catch_percent=percent)
    # then the catch tasks are round(percent% of 40), at least one when the share is not 0
    n_real = experiment.tasks.filter(is_catch=False).count()
    n_catch = experiment.tasks.filter(is_catch=True).count()
    assert n_real == 40
    assert n_catch == (0 if percent == 0 else max(1, round(percent / 100 * 40)))
    # with the same quota and slots as the real tasks, positions shuffled in among them
    assert set(experiment.tasks.values_list("quota", flat=True)) == {2}
    assert Slot.objects.filter(experiment=experiment).count() == 2 * (n_real + n_catch)
    positions = sorted(experiment.tasks.values_list("position", flat=True))
    assert positions == list(range(n_real + n_catch))
    if n_catch >= 5:
        catch_positions = sorted(
            experiment.tasks.filter(is_catch=True).values_list("position", flat=True)
        )
        assert catch_positions != list(range(n_real, n_real + n_catch))  # not all at the end
        assert catch_positions != list(range(n_catch))  # nor all at the front


def test_pairwise_catch_is_a_real_map_against_the_same_map_rotated():
    experiment = _launched(kind="pw", catch_percent=50)
    catch = experiment.tasks.filter(is_catch=True).select_related("stimulus_a", "stimulus_b")
    assert catch.count() == 20
    pair_labels = {label for pair in PAIRS for label in pair}
    task_images = set(experiment.tasks.filter(is_catch=False).values_list("image_id", flat=True))
    for task in catch.select_related("stimulus_a__variant"):
        a, b = task.stimulus_a, task.stimulus_b
        # A is the real map, B the rotated one: same variant, same image, same kind and method
        assert a.catch == "" and b.catch == "rot180"
        assert a.variant_id == b.variant_id and a.variant.label in pair_labels
        assert a.image_id == b.image_id == task.image_id
        assert a.kind == b.kind == "heat" and a.method == b.method == "gradcam"
        assert not a.is_blank and not b.is_blank
        # on an image the real tasks use (never an onboarding image)
        assert task.image_id in task_images
    # no real task shows a rotated map
    real = experiment.tasks.filter(is_catch=False)
    assert not real.filter(stimulus_b__catch="rot180").exists()
    assert not real.filter(stimulus_a__catch__gt="").exists()
    # every (A, B) pair at most once
    combos = list(catch.values_list("stimulus_a_id", "stimulus_b_id"))
    assert len(set(combos)) == len(combos)


def test_pairwise_catch_sides_are_balanced():
    experiment = _launched(kind="pw", catch_percent=50)
    sides = Counter(experiment.tasks.filter(is_catch=True).values_list("left_is_a", flat=True))
    assert sides[True] == sides[False] == 10


@pytest.mark.parametrize("n_catch_percent", [13, 27])
def test_odd_numbers_of_catch_tasks_differ_by_at_most_one_side(n_catch_percent):
    experiment = _launched(kind="pw", catch_percent=n_catch_percent)
    sides = Counter(experiment.tasks.filter(is_catch=True).values_list("left_is_a", flat=True))
    assert abs(sides[True] - sides[False]) <= 1


def test_forced_choice_catch_is_a_lightly_occluded_photo_of_a_shown_condition():
    experiment = _launched(kind="fc", catch_percent=50)
    catch = experiment.tasks.filter(is_catch=True).select_related("stimulus_a__variant")
    assert catch.count() == 20
    for task in catch:
        assert task.stimulus_b_id is None and task.left_is_a is None
        s = task.stimulus_a
        assert (s.kind, s.catch, s.method) == ("occlusion", "light", "gradcam")
        assert s.variant.label in CONDITIONS and s.image_id == task.image_id
    # both shown conditions get catch tasks
    assert {t.stimulus_a.variant.label for t in catch} == set(CONDITIONS)
    assert not experiment.tasks.filter(is_catch=False, stimulus_a__catch__gt="").exists()


def test_catch_tasks_never_repeat_a_stimulus_pair_even_at_the_highest_share():
    # given pairs sharing cpr1 and the largest share (50% of 2 pairs x 10 images = 10)
    experiment = _launched(kind="pw", catch_percent=50, images_per_class=1, family_images=2)
    combos = list(experiment.tasks.values_list("stimulus_a_id", "stimulus_b_id"))
    assert len(combos) == len(set(combos)) == 20 + 10


def _describe(tasks) -> list[tuple]:
    """Tasks as comparable tuples (no primary keys): the same plan in any database."""
    out = []
    for t in tasks:
        b = t.stimulus_b
        out.append((
            t.position, t.is_catch, t.left_is_a, t.image.key, t.stimulus_a.variant.label,
            t.stimulus_a.catch, b.variant.label if b else None, b.catch if b else None,
        ))  # fmt: skip
    return sorted(out)


@pytest.mark.parametrize("kind", ["pw", "fc"])
def test_same_seed_same_tasks_and_onboarding_images(kind):
    # given two studies with the same seed on two identical families
    first = _launched(slug="a", kind=kind, catch_percent=25)
    second = _launched(slug="b", kind=kind, catch_percent=25)
    # then they have the same tasks (positions, sides, images, conditions, catch stimuli)
    assert _describe(first.tasks.all()) == _describe(second.tasks.all())
    keys = lambda e: [SourceImage.objects.get(pk=pk).key for pk in e.onboarding_images]  # noqa: E731
    assert keys(first) == keys(second)
    # and another seed gives another plan
    other = _launched(slug="c", kind=kind, catch_percent=25, seed=8)
    assert _describe(other.tasks.all()) != _describe(first.tasks.all())


def test_the_plan_writes_nothing_and_is_what_the_launch_saves():
    study = _study(kind="pw", catch_percent=10)
    experiment = study.experiments.get()
    plan = experiment_plan_tasks(experiment=experiment)
    again = experiment_plan_tasks(experiment=experiment)
    assert not Task.objects.exists() and experiment.onboarding_images == []
    assert _describe(plan.tasks) == _describe(again.tasks)
    assert plan.onboarding_images == again.onboarding_images
    assert plan.n_catch == 4 and all(t.pk is None for t in plan.tasks)
    study_launch(study=study)
    experiment.refresh_from_db()
    assert _describe(experiment.tasks.all()) == _describe(plan.tasks)
    assert experiment.onboarding_images == plan.onboarding_images


@pytest.mark.parametrize(
    ("kind", "missing"),
    [("pw", "heat maps rotated 180 degrees"), ("fc", "lightly occluded occlusion-maps")],
)
def test_missing_catch_stimuli_are_named_with_both_remedies(kind, missing):
    # given a family imported from a pipeline run before catch stimuli existed
    study = _study(kind=kind, family_kwargs={"catch": False})
    # when launching with the default catch share
    with pytest.raises(ApplicationError) as err:
        study_launch(study=study)
    # then the error names the experiment, the missing kind and both remedies
    message = err.value.message
    assert f"Experiment '{kind}'" in message and missing in message
    assert "Re-run the family's pipeline" in message and "catch percent to 0" in message
    assert not Task.objects.exists()
    study.refresh_from_db()
    assert study.status == Study.Status.DRAFT


def test_without_catch_trials_an_old_family_still_launches():
    study = _study(kind="fc", family_kwargs={"catch": False}, catch_percent=0)
    experiment = study_launch(study=study).experiments.get()
    assert experiment.tasks.count() == 40 and not experiment.tasks.filter(is_catch=True).exists()


def test_forced_choice_heat_maps_have_no_catch_trials_and_say_so():
    family = family_with_stimuli(slug="fam-h", images_per_class=3)
    study = study_create(name="S", slug="h", family=family)
    experiment_create(
        study=study, slug="fch", name="FC heat", kind="forced_choice", stimulus_kind="heat",
        conditions=CONDITIONS, images_per_class=2,
    )  # fmt: skip
    with pytest.raises(ApplicationError) as err:
        study_launch(study=study)
    assert "occlusion-maps only" in err.value.message and "catch percent to 0" in err.value.message


# --- onboarding reserve ----------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["pw", "fc"])
@pytest.mark.parametrize("practice", [0, 1, 2, 3])
def test_onboarding_images_are_never_shown_by_a_task(kind, practice):
    experiment = _launched(kind=kind, practice_trials=practice, catch_percent=20)
    reserved = experiment.onboarding_images
    # then 1 + practice images: the worked example first, then the practice trials
    assert len(reserved) == len(set(reserved)) == 1 + practice
    used = set(experiment.tasks.values_list("image_id", flat=True))
    used |= set(Slot.objects.filter(experiment=experiment).values_list("image_id", flat=True))
    assert not used & set(reserved)
    # from distinct classes, each with non-blank real maps for every variant involved
    images = SourceImage.objects.filter(pk__in=reserved)
    assert len({image.class_index for image in images}) == 1 + practice
    labels = {label for pair in PAIRS for label in pair} if kind == "pw" else set(CONDITIONS)
    kind_of_map = "heat" if kind == "pw" else "occlusion"
    for image in images:
        real = Stimulus.objects.filter(image=image, kind=kind_of_map, catch="", is_blank=False)
        assert set(real.values_list("variant__label", flat=True)) >= labels
        if kind == "pw":
            rotated = Stimulus.objects.filter(image=image, kind=kind_of_map, catch="rot180")
            assert set(rotated.values_list("variant__label", flat=True)) >= labels


def test_too_few_spare_images_say_how_many_and_what_to_do():
    # given every image of the family used by tasks (2 per class of 2) and 2 practice trials
    study = _study(kind="pw", family_images=2, images_per_class=2, practice_trials=2)
    with pytest.raises(ApplicationError) as err:
        study_launch(study=study)
    message = err.value.message
    assert "needs 3 spare images" in message and "only 0 are available" in message
    assert "fewer images per class" in message and "fewer practice trials" in message


def test_no_practice_keeps_one_example_image_if_there_is_one_and_never_fails():
    with_spare = _launched(slug="a", kind="fc", practice_trials=0)
    assert len(with_spare.onboarding_images) == 1
    without = _launched(slug="b", kind="fc", practice_trials=0, family_images=2)
    assert without.onboarding_images == []
    assert without.tasks.filter(is_catch=False).count() == 40


def test_spare_images_prefer_distinct_classes_but_may_share_one():
    # given 5 images per class, 2 used by tasks, but the spare ones of every class except
    # "circle" have a blank map (unusable): the only spare images are 3 circles
    blank = {(f"test/{name}/{n:04d}", "cpr1") for name in CLASS_NAMES[1:] for n in range(2, 5)}
    study = _study(
        kind="fc", family_images=5, practice_trials=2, catch_percent=0,
        family_kwargs={"blank": blank},
    )  # fmt: skip
    experiment = study_launch(study=study).experiments.get()
    images = SourceImage.objects.filter(pk__in=experiment.onboarding_images)
    assert len(experiment.onboarding_images) == 3
    assert {image.class_name for image in images} == {"circle"}


# --- blinding: catch tasks look like any other task -------------------------------------------
URL = re.compile(r"/media/(?P<prefix>s|img)/[0-9a-f]{2}/[0-9a-f]{32}\.png")


def _served(url: str) -> bytes:
    """The file the media view serves for ``url`` (the URLconf binds the first test's
    MEDIA_ROOT, so the view is called with this test's own)."""
    match = resolve(url)
    kwargs = {**match.kwargs, "document_root": settings.MEDIA_ROOT}
    response = match.func(RequestFactory().get(url), **kwargs)
    assert response.status_code == 200
    return b"".join(response.streaming_content)


@pytest.mark.parametrize("kind", ["pw", "fc"])
def test_catch_and_real_tasks_cannot_be_told_apart_through_the_rater_api(kind):
    # given a live experiment with 50% catch tasks, one answer per task, no other checks
    experiment = _launched(
        kind=kind, catch_percent=50, answers_per_task=1, tasks_per_rater=20,
        practice_trials=0, attention_checks=0, probe_percent=0,
    )  # fmt: skip
    payloads: dict[bool, list[dict]] = {True: [], False: []}
    # when raters work through every task via the real pages and API
    for _ in range(10):
        rater = Rater_(experiment.code)
        while (body := rater.next().json())["state"] == "task":
            task = body["task"]
            assignment = Assignment.objects.select_related("task").get(
                public_id=task["assignment_id"]
            )
            payloads[assignment.task.is_catch].append(body)
            assert rater.answer(task["assignment_id"], 1).status_code == 201
        if sum(map(len, payloads.values())) == 60:
            break
    catch, real = payloads[True], payloads[False]
    assert (len(catch), len(real)) == (20, 40)
    # then the payloads have the same shape: keys, task keys, URL pattern and lengths
    shape = lambda b: (sorted(b), sorted(b["task"]))  # noqa: E731
    assert {repr(shape(b)) for b in catch} == {repr(shape(b)) for b in real}
    url_keys = [k for k in catch[0]["task"] if k.endswith("_url")]
    assert url_keys
    for body in catch + real:
        text = repr(body).lower()
        assert not re.search(r"\bcatch|rot180|\blight\b|rotat", text)
        for key in url_keys:
            match = URL.fullmatch(body["task"][key])
            assert match, body["task"][key]  # same pattern, hence same length
            assert match["prefix"] == ("img" if key == "original_url" else "s")
    # the served images: same pixel size, and file sizes no test can tell apart
    map_keys = [k for k in url_keys if k != "original_url"]
    sizes: dict[bool, list[int]] = {True: [], False: []}
    for is_catch, bodies in payloads.items():
        for body in bodies:
            for key in map_keys:
                data = _served(body["task"][key])
                assert Image.open(io.BytesIO(data)).size == (8, 8)
                sizes[is_catch].append(len(data))
    assert stats.mannwhitneyu(sizes[True], sizes[False]).pvalue > 0.01
    assert stats.ks_2samp(sizes[True], sizes[False]).pvalue > 0.01
